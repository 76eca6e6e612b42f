"""What the seed windows allow: the generator's own process as a forecaster, on bench_engine's windows.

    python -m benchmarks.seed_oracle

The forecaster is the seed recipe's demand formula itself (`processing.generate._demand`) with
every per-item parameter, promotion and holiday boost known and only the N(0, 5) noise unknown:
its p10/p50/p90 are the formula at the noise's quantiles. Issue 14 quotes it ("the generator's
own process, with only its noise unknown, scores 0.0015"). A second row gives it the holiday rule
the history shows instead: in 2021 and 2022 the next New Year is on the recipe's list and, being
later in it, sets the boosts of Dec 25-29 to 0.4 and Dec 30-31 to 0.8; in 2023 the list stops at
2023, so Dec 23-27 get 0.8 and Dec 28-31 0.4. No forecaster learning from the history can know
that, so the second row bounds what history-based forecasting can reach on the second window.
Seasonal naive, bench_engine's baseline, in the same run. Scored as bench_engine scores (mean wQL over
p10/p50/p90 on the 125 series x 14 days of each window).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from benchmarks.bench_engine import CUTOFFS, HORIZON, load_seed, run_statsforecast, score
from forecasting.metrics import wql
from processing import generate

Z90 = 1.2815515655446004  # the standard normal's 0.9 quantile


def demand(draws, boost: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(items x days) of the recipe's formula, in the generator's item order."""
    n = len(draws.dates)
    terms = generate._day_terms(n)
    return generate._demand(
        draws.base,
        draws.strength,
        draws.trend,
        draws.weather_on,
        np.arange(n),
        *terms,
        boost,
        draws.promo[:, :n],
        noise,
    )


def process_quantiles(draws, boost: np.ndarray) -> dict:
    """{p10, p50, p90}: the formula at the noise's quantiles (it is monotone in the noise)."""
    shape = (len(draws.items), len(draws.dates))
    return {
        name: demand(draws, boost, np.full(shape, 5.0 * z)) for name, z in (("p10", -Z90), ("p50", 0.0), ("p90", Z90))
    }


def seasonal_naive_wql(frame: pd.DataFrame, cutoff: str) -> float:
    """bench_engine's own baseline (statsforecast's SeasonalNaive, 80% level) on the window."""
    end = (pd.Timestamp(cutoff) + pd.Timedelta(days=HORIZON)).strftime("%Y-%m-%d")
    history = frame[frame["timestamp"] <= cutoff]
    window = frame[(frame["timestamp"] > cutoff) & (frame["timestamp"] <= end)]
    forecast = run_statsforecast(history, "naive")
    return score(window[["item_id", "timestamp", "target_value"]], forecast, history)["wQL"]


def table() -> list:
    draws = generate._draw(25, 5, generate.DEFAULT_START, generate.DEFAULT_END, 42, 0)
    dates = draws.dates
    recipe_list = generate.us_holidays(range(dates[0].year, pd.Timestamp(generate.RECIPE_END).year + 1))
    history_rule = generate.us_holidays(range(dates[0].year, pd.Timestamp(generate.RECIPE_END).year + 2))
    frame = load_seed()  # the generated data itself: the oracle must reproduce its targets
    actual = frame.pivot(index="item_id", columns="timestamp", values="target_value")
    actual = actual.reindex(index=sorted(draws.items["item_id"]), columns=dates.strftime("%Y-%m-%d")).to_numpy()
    order = np.argsort(draws.items["item_id"].to_numpy().astype(str), kind="stable")
    truth = demand(draws, generate._holiday_boost(dates, recipe_list), draws.noise[:, : len(dates)])[order]
    if not np.allclose(truth, actual):
        raise RuntimeError("the formula with the drawn noise does not reproduce the generated data")
    rows = []
    methods = [
        ("the generator's process (noise unknown)", recipe_list),
        ("... with the history's holiday rule", history_rule),
    ]
    for label, holidays in methods:
        forecast = {k: v[order] for k, v in process_quantiles(draws, generate._holiday_boost(dates, holidays)).items()}
        scores = []
        for cutoff in CUTOFFS:
            c = dates.get_loc(pd.Timestamp(cutoff))
            window = slice(c + 1, c + 1 + HORIZON)
            scores.append(wql(actual[:, window].ravel(), {k: v[:, window].ravel() for k, v in forecast.items()}))
        rows.append((label, *scores, float(np.mean(scores))))
    naive = [seasonal_naive_wql(frame, cutoff) for cutoff in CUTOFFS]
    rows.append(("seasonal naive (bench_engine's baseline)", *naive, float(np.mean(naive))))
    return rows


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    print(f"{'forecaster':<42} {'to ' + CUTOFFS[0]:>14} {'to ' + CUTOFFS[1]:>14} {'mean wQL':>9}")
    for label, first, second, mean in table():
        print(f"{label:<42} {first:>14.5f} {second:>14.5f} {mean:>9.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
