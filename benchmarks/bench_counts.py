"""Low-count integer demand: the engine's count quantiles against its continuous band, and seasonal naive.

    python -m benchmarks.bench_counts                 # 3 kinds x 2 seeds, 40 items x 400 days, h=14 (~1.5 min)
    python -m benchmarks.bench_counts --kinds mixed --seeds 0

The long tail of a retail catalogue sells a few units a day or less. Each panel is drawn in code
(seeded): `steady` items sell Poisson(2-8) a day with a weekly pattern; `intermittent` items sell on
10-50% of days, 1-3 units when they do; `mixed` alternates the two. One training per panel; the held-out 14
days are forecast twice from the same fitted model: as trained (count quantiles where the backtests
chose them, `forecasting.counts`) and with the count band removed (`model.count_band = None`: the
calibrated continuous band), so the difference is the count rule alone. Seasonal naive
(statsforecast, bench_engine's baseline) in the same run. Mean wQL over p10/p50/p90, WAPE, MASE,
p10-p90 coverage (inclusive: on whole units it sits above 0.8 for an exact distribution).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
import pandas as pd

from benchmarks.bench_engine import HORIZON, QUANTILES, run_statsforecast, score

KINDS = ("steady", "intermittent", "mixed")


def count_panel(kind: str, seed: int, n_items: int = 40, days: int = 400) -> pd.DataFrame:
    """Daily integer sales in the user's columns (item_id, timestamp, target_value)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=days, freq="D").strftime("%Y-%m-%d")
    weekly = 1 + 0.4 * np.sin(2 * np.pi * np.arange(days) / 7)
    frames = []
    for i in range(n_items):
        if kind == "intermittent" or (kind == "mixed" and i % 2):
            share, size = rng.uniform(0.1, 0.5), rng.uniform(1, 3)
            sells = rng.random(days) < share * weekly / weekly.max()
            y = sells * (1 + rng.poisson(size - 1, days))
        else:
            y = rng.poisson(rng.uniform(2, 8) * weekly)
        frames.append(pd.DataFrame({"item_id": f"{kind}_{i:02d}", "timestamp": dates, "target_value": y.astype(float)}))
    return pd.concat(frames, ignore_index=True)


def split(frame: pd.DataFrame, horizon: int = HORIZON):
    """(history, context with the last `horizon` days' targets empty, actuals of those days)."""
    cutoff = sorted(frame["timestamp"].unique())[-horizon]
    held = frame["timestamp"] >= cutoff
    context = frame.copy()
    context.loc[held, "target_value"] = np.nan
    return frame[~held].reset_index(drop=True), context, frame[held].reset_index(drop=True)


def run(kind: str, seed: int, n_items: int = 40, days: int = 400, log=None) -> list:
    """[{kind, seed, method, wQL, WAPE, MASE, coverage}] for seasonal naive and the engine with and without counts."""
    from forecasting import EngineConfig, load_model, train

    history, context, actual = split(count_panel(kind, seed, n_items, days))
    config = EngineConfig(frequency="D", horizon=HORIZON, quantiles=QUANTILES)
    rows = [{"method": "seasonal naive", **score(actual, run_statsforecast(history, "naive"), history)}]
    with tempfile.TemporaryDirectory(prefix="bench-counts-") as workdir:
        lines: list = []
        result = train(history, config, workdir, log=lines.append)
        model = load_model(result.model_dir)
        band = model.count_band
        rows.append({"method": "engine", **score(actual, model.predict(context), history)})
        model.count_band = None
        rows.append({"method": "engine, continuous band", **score(actual, model.predict(context), history)})
    chosen = next((line for line in lines if "low-count integers" in line), "[engine] count band: not used")
    if log:
        log(f"{kind} seed {seed}: {chosen}")
    for row in rows:
        row.update(kind=kind, seed=seed, count_band=band is not None)
    return rows


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated: {', '.join(KINDS)}")
    parser.add_argument("--seeds", default="0,1", help="comma-separated integers")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--days", type=int, default=400)
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; one of {', '.join(KINDS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
    rows = []
    for kind in kinds:
        for seed in seeds:
            rows += run(kind, seed, args.items, args.days, log=print)
    table = pd.DataFrame(rows)
    print("\nper panel:")
    print(table.set_index(["kind", "seed", "method"])[["wQL", "WAPE", "MASE", "coverage"]].round(4).to_string())
    print(f"\nmean over seeds {','.join(map(str, seeds))}:")
    mean = table.groupby(["kind", "method"], sort=False)[["wQL", "WAPE", "MASE", "coverage"]].mean()
    print(mean.round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
