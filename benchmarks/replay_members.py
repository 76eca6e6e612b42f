"""Replay the engine's ensemble on cached member forecasts: a fast way to try members and settings.

For each bench_real window (the same splits as `bench_real`), every member's backtest forecasts
(the engine's own backtest windows, fitted as the engine fits them) and its held-out forecast
(fitted on the whole training data, as the engine's final model) are computed once and cached
under --cache; the engine's greedy weights, pruning, interval calibration and `combine` are then
re-run on them, and the held-out forecast is scored as bench_real scores it.

    python -m benchmarks.replay_members --datasets visnights,prison --windows 2
    python -m benchmarks.replay_members --datasets visnights --add ThetaClassic:window=40 --drop NPTSLevel
    python -m benchmarks.replay_members --datasets visnights --alone DynamicRegression

A member is `Name` or `Name:key=value,key=value` (a registered candidate with parameter overrides;
values are read as Python literals). `--add` joins members to the default preset's, `--drop`
removes some, `--alone` scores one member with the baseline only. With the default members it
reproduces bench_real's engine figures (same members, windows, weights and calibration), up to
members whose fit depends on the order of runs (none of the default ones).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from benchmarks import bench_real

CACHE = Path(os.environ.get("REPLAY_CACHE", "/tmp/replay-members-cache"))


def parse_member(text: str) -> tuple:
    name, _, rest = text.partition(":")
    params = {}
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    return name.strip(), params


def _import(path: str):
    """A candidate class outside the registry, by dotted path (an experiment's own module)."""
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _split_full(config, frame, window, H):
    """(history panel, future panel with actual targets removed, actual (n, H)) of a bench window."""
    import dataclasses

    from forecasting.engine import _prepare

    rows = frame[frame["timestamp"] <= window.context["timestamp"].max()]
    _, _, _, full = _prepare(rows.reset_index(drop=True), config, "replay")
    head, tail = full.split_tail(H, H)
    actual = tail.y.reshape(tail.n_series, H).copy()
    future = dataclasses.replace(tail, y=np.full_like(tail.y, np.nan))
    return head, future, actual


def member_forecasts(spec: tuple, config, panel, windows, held, cache_tag: str) -> dict:
    """{"bt": [window forecasts], "ho": held-out forecast}, cached."""
    from forecasting.engine import _carries_over
    from forecasting.models import CANDIDATES

    name, params = spec
    path = CACHE / f"{cache_tag}-{_key(name, sorted(params.items()))}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    cls = CANDIDATES.get(name) or _import(name)
    bt, model = [], None
    for window in windows:
        head = window.head()
        if model is None or not _carries_over(model, panel.n_series):
            model = cls(config, **params)
            model.windows_after = 0
            model.fit(head)
        bt.append(model.forecast(head, window.future).values)
    head, future, _ = held
    # as engine.train: a member that keeps its latest backtest fit is not refitted
    final = model if model is not None and model.reuses_backtest_selection else cls(config, **params).fit(head)
    out = {"bt": bt, "ho": final.forecast(head, future).values}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def replay(members: dict, windows, held, config, n_series: int) -> tuple:
    """(held-out ensemble forecast (n, H, q + 1), weights) from the members' cached forecasts."""
    from forecasting.calendar import UnseenHolidays
    from forecasting.counts import CountBand, count_series
    from forecasting.engine import SCREEN_MIN_SERIES, _ensemble, _holiday_spread, _joined, _prunable
    from forecasting.ensemble import calibrate, combine

    names = list(members)
    results = {n: {"forecasts": members[n]["bt"]} for n in names}
    weights = _ensemble(names, results, windows, config)
    pruned = _prunable(names, weights) if n_series >= SCREEN_MIN_SERIES else []
    if pruned:
        weights = _ensemble([n for n in names if n not in pruned], results, windows, config)
        weights.update({n: np.zeros(len(config.quantiles) + 1) for n in pruned})
    levels = config.quantile_levels
    head = held[0]
    non_negative = bool(np.nanmin(head.y) >= 0)
    raw = [combine({n: members[n]["bt"][w] for n in names}, weights, levels) for w in range(len(windows))]
    # the unseen-holiday widening, as the engine's train and predict apply it (a calendar only)
    spreads = [_holiday_spread(config, w.panel, w) if config.holiday_country else None for w in windows]
    actual = np.concatenate([w.actual for w in windows])
    factors = calibrate(np.concatenate(raw), actual, levels, n_series, _joined(spreads, raw, levels))
    bt = [
        combine({n: members[n]["bt"][w] for n in names}, weights, levels, factors, non_negative, spreads[w])
        for w in range(len(windows))
    ]
    rows = [count_series(w.panel, config.season_length, w.n_tail) for w in windows]
    band = CountBand.learn(np.concatenate(bt), actual, np.concatenate(rows), levels)
    holidays = UnseenHolidays.learn(config.holiday_country, config.frequency_unit, head, levels)
    spread = None if holidays is None else holidays.spread_rows(held[1].ds, held[1].n_series, held[1].uids)
    out = combine(
        {n: members[n]["ho"] for n in names},
        weights,
        levels,
        factors,
        non_negative,
        spread,
        band,
        None if band is None else count_series(head, config.season_length),
    )
    return out, weights


def run(dataset: str, n_windows: int, specs: list, log=print) -> list:
    """[{window, wQL, MASE, coverage, weights}] for the members `specs` on the dataset's bench windows."""
    from forecasting.engine import _prepare, backtest_windows, extra_windows_affordable

    data = bench_real.load(dataset)
    frame = bench_real.prepare(data)
    config = engine_config(data)
    season = config.season_length
    rows = []
    for bw in bench_real.windows(frame, data.horizon, bench_real.last_cutoffs(frame, data.horizon, n_windows)):
        _, _, _, panel = _prepare(bw.history.reset_index(drop=True), config, "replay")
        window_specs = suited(specs, config, panel)
        names = [n for n, _ in window_specs]
        extra = extra_windows_affordable(names, panel.n_series, config, config.windows_for(panel.lengths))
        windows = backtest_windows(panel, config, lambda *_: None, extra=extra)
        held = _split_full(config, frame, bw, data.horizon)
        calendar = f"-{config.holiday_country}" if config.holiday_country else ""
        tag = f"{dataset}{calendar}-{bw.cutoff.date()}-{len(windows)}"
        members = {}
        for spec in window_specs:
            label = spec[0] + ("" if not spec[1] else ":" + ",".join(f"{k}={v}" for k, v in sorted(spec[1].items())))
            members[label] = member_forecasts(spec, config, panel, windows, held, tag)
        forecast, weights = replay(members, windows, held, config, panel.n_series)
        actual = held[2]
        assert np.allclose(actual, bw.actual), "replay's held-out split differs from bench_real's"
        s = bench_real.score(actual, forecast, bench_real.past_values(bw), season)
        alone = {
            n: bench_real.score(actual, m["ho"], bench_real.past_values(bw), season)["wQL"] for n, m in members.items()
        }
        rows.append(
            {
                "window": str(bw.cutoff.date()),
                **s,
                "weights": weights,
                "alone": alone,
                "n_bt": len(windows),
                "forecast": forecast,
                "members": {n: m["ho"] for n, m in members.items()},
                "actual": actual,
            }
        )
        log(
            f"  {dataset} to {bw.cutoff.date()} ({len(windows)} bt windows): wQL {s['wQL']:.4f}, "
            f"coverage {s['coverage']:.2f}; weights "
            + ", ".join(f"{n} {np.mean(w[:-1]):.2f}" for n, w in weights.items() if np.any(w))
        )
    return rows


def engine_config(data):
    """The EngineConfig bench_real trains with (its holiday calendar included)."""
    from forecasting import EngineConfig

    return EngineConfig(
        frequency=data.frequency,
        horizon=data.horizon,
        quantiles=bench_real.QUANTILES,
        holiday_country=data.holiday_country,
    )


def suited(specs: list, config, panel) -> list:
    """The specs the engine would train on this training panel: it leaves out a member whose
    `suits_panel` refuses it (asked for or not), and with `suits` alone, on the series count,
    DirectTabular's history rule was missed (avocado replayed with it, bench_real without)."""
    from forecasting.models import CANDIDATES

    return [s for s in specs if s[0] not in CANDIDATES or CANDIDATES[s[0]].suits_panel(config, panel)]


def default_specs(dataset: str) -> list:
    """The default preset's members for the dataset; `run` leaves out, per window, what does not suit."""
    from forecasting.models import default_members

    return [(n, {}) for n in default_members(engine_config(bench_real.load(dataset)))]


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="visnights")
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--add", action="append", default=[], help="Name[:key=value,...] (repeatable)")
    parser.add_argument("--drop", action="append", default=[], help="a default member to leave out (repeatable)")
    parser.add_argument("--alone", default=None, help="Name[:key=value,...]: this member with the baseline only")
    args = parser.parse_args(argv)
    names = bench_real.parse_datasets(parser, args.datasets, bench_real.KNOWN, args.windows, bench_real.GROUPS)
    for dataset in names:
        if args.alone:
            from forecasting.models import BASELINE

            specs = [(BASELINE, {}), parse_member(args.alone)]
        else:
            specs = [s for s in default_specs(dataset) if s[0] not in args.drop]
            specs += [parse_member(a) for a in args.add]
        rows = run(dataset, args.windows, specs)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("wQL", "MASE", "coverage")}
        alone = {n: float(np.mean([r["alone"][n] for r in rows])) for n in rows[0]["alone"]}
        last2 = f" (last 2: {np.mean([r['wQL'] for r in rows[-2:]]):.5f})" if len(rows) > 2 else ""
        print(
            f"{dataset}: mean wQL {mean['wQL']:.5f}{last2}, coverage {mean['coverage']:.2f}, MASE {mean['MASE']:.4f} "
            f"(members alone: " + ", ".join(f"{n} {v:.4f}" for n, v in alone.items()) + ")",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
