"""train(): candidates -> rolling-origin backtests -> greedy ensemble -> refit -> artifact.

Backtest windows sit at the end of the training data, each one horizon long (W = 2 here):

    series:  |==================== history ====================|
    window 2 |=========== fit ===========|-- H --|
    window 1 |================ fit ===============|-- H --|
    refit    |======================== fit =================|-- H --> (the real forecast)

Each candidate is fitted on the data before a window and forecasts it; the objective metric
over all windows ranks candidates, and the same backtest forecasts choose the ensemble weights.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import pandas as pd

from .artifact import LEADERBOARD_FILE, ForecastModel
from .calendar import UnseenHolidays
from .config import FIXED_SECONDS, PER_SERIES_SECONDS, EngineConfig
from .counts import CountBand, count_series
from .data import Panel, check_training_panel, infer_roles, long_columns, panel_from_columns, read_table, static_frame
from .ensemble import (
    calibrate,
    caruana_weights,
    combine,
    describe_calibration,
    pinball_loss,
    point_loss,
    with_counts,
)
from .metrics import OBJECTIVE_KEYS, score_all, seasonal_naive_scales
from .models import BASELINE, CANDIDATES, TimeBudgetExceeded, create, default_members, display_name, lists_all
from .models.base import Fallbacks, straddles_median

logger = logging.getLogger(__name__)

ENSEMBLE_NAME = "WeightedEnsemble"
REFIT_SHARE = 0.25  # of the time limit kept for the final refit and saving
# Costly members (relative_cost at least this: Theta, ETS, ARIMA, DeepAR, Prophet) refit on all
# data and/or re-estimate every series at each prediction (backtest transform, batch, endpoint).
# One whose ensemble weight stays under PRUNE_BELOW_WEIGHT (fewer than 3 of the 20 greedy rounds
# per quantile on average) is pruned and the weights re-fitted without it: on the seed's default
# pipeline list ETS took 0-0.017, ARIMA 0.067-0.1 and DeepAR 0.067 of the weight for most of the
# AutoML step's time and of every batch transform (docs/engine.md).
COSTLY_RELATIVE_COST = 4
PRUNE_BELOW_WEIGHT = 0.15
# Per-series statistical candidates on panels of at least SCREEN_MIN_SERIES series first backtest a
# sample of SCREEN_SERIES series, in an ensemble with the candidates done so far; one that would be
# pruned there is screened out before it spends its full backtests. Pruning and the once-per-training
# form search (`_carries_over`) also start at SCREEN_MIN_SERIES: below it they save little.
SCREEN_SERIES = 25
SCREEN_MIN_SERIES = 100


@dataclasses.dataclass
class TrainResult:
    best_candidate_name: str
    objective_metric: str
    objective_value: float
    leaderboard: pd.DataFrame
    model_dir: Path


def _prepare(data, config: EngineConfig, source: str):
    """(input frame, column roles, static attributes, panel). The panel is built on the long
    arrays themselves, with no long frame in between (the peak of a 25,000-series training)."""
    df = data if isinstance(data, pd.DataFrame) else read_table(data, config)
    roles = infer_roles(df, config)
    columns = long_columns(df, config, roles, source, training=True)
    static = static_frame(df, config, roles)
    panel = panel_from_columns(columns, roles.covariates, static[roles.static])
    del columns
    check_training_panel(panel, config, source)
    return df, roles, static, panel


# Backtest seconds (PER_SERIES_SECONDS x series x the windows the panel would get) below which a
# candidate that refits per series and window still lets a short panel take extra windows: Theta
# on 20 weekly series, 4 windows, ~4 s (its 2 extra windows gained chicago_weekly 5%), while ETS on
# 20 quarterly series or Prophet on 8 would add 12-15 s or more (docs/engine.md "Seventeenth session")
CHEAP_BACKTEST_SECONDS = 10.0


def extra_windows_affordable(names, n_series: int, config: EngineConfig, windows: Optional[int] = None) -> bool:
    """Whether a short panel may get more than `backtest_windows` windows (EngineConfig.windows_for):
    only when every candidate is cheap per window, by its class (relative_cost < 4) or because
    the panel is small enough that its per-series refits over `windows` (the windows it would
    get; None: `max_backtest_windows`) stay under CHEAP_BACKTEST_SECONDS."""
    count = config.max_backtest_windows if windows is None else int(windows)
    for name in names:
        cls = CANDIDATES.get(name)
        if cls is None or cls.relative_cost < 4:
            continue
        per_series = PER_SERIES_SECONDS.get(name)
        projected = FIXED_SECONDS.get(name, 0.0) + (per_series or np.inf) * n_series * count
        if projected > CHEAP_BACKTEST_SECONDS:
            return False
    return True


@dataclasses.dataclass
class BacktestWindow:
    """One backtest window: the future without its target, the actuals (series, H), MASE scales.

    The history (`head()`) is cut from the panel when a candidate needs it and dropped after:
    each one is a copy of nearly the whole panel (~0.9 GB at 25,000 daily series with two
    covariates), so holding every window's history at once cost a panel copy per window."""

    panel: Panel
    n_tail: int
    future: Panel
    actual: np.ndarray
    scales: np.ndarray

    def head(self) -> Panel:
        return self.panel.split_tail(self.n_tail, 0)[0]


def backtest_windows(panel, config: EngineConfig, log, extra: bool = True) -> list:
    """[BacktestWindow] oldest window first.

    extra: short panels may get more windows than `backtest_windows` (EngineConfig.windows_for)."""
    H, out = config.horizon, []
    count = config.windows_for(panel.lengths) if extra else config.backtest_windows
    for k in range(count, 0, -1):
        head, tail = panel.split_tail(k * H, H)
        if head.n_series == 0:
            log(f"  backtest window {k}: no series long enough (need > {k * H + 1} periods); skipped")
            continue
        actual = tail.y.reshape(tail.n_series, H).copy()
        future = dataclasses.replace(tail, y=np.full_like(tail.y, np.nan))
        scales = seasonal_naive_scales([head.series_y(i) for i in range(head.n_series)], config.season_length)
        out.append(BacktestWindow(panel, k * H, future, actual, scales))
        del head, tail
    if not out:
        raise ValueError(
            f"training data too short for backtesting: every series needs more than "
            f"{config.horizon + 1} periods (horizon {config.horizon}); provide longer history"
        )
    return out


def train(
    data,
    config: EngineConfig,
    output_dir,
    time_limit_seconds: Optional[float] = None,
    log: Optional[Callable[[str], None]] = None,
    candidates: Optional[list] = None,
    candidate_params: Optional[dict] = None,
) -> TrainResult:
    """Train the engine on an AutoML training CSV (path or DataFrame) and write output_dir/model.

    Progress goes to `log` (the AutoML worker and the CLI pass print), else to this module's logger."""
    log = log or logger.info
    started = time.monotonic()
    limit = time_limit_seconds if time_limit_seconds is not None else config.max_runtime_seconds
    deadline = started + float(limit) if limit else None
    source = str(data) if not isinstance(data, pd.DataFrame) else "training data"
    df, roles, static, panel = _prepare(data, config, source)
    del df  # the panel holds what training needs: the input frame is ~1.5 GB at 25,000 daily series
    log(
        f"[engine] {panel.n_series} series, {len(panel.y)} rows, frequency {config.frequency}, "
        f"horizon {config.horizon}, quantiles {','.join(config.quantiles)}, objective {config.objective}"
    )
    log(
        f"[engine] covariates {roles.covariates or '-'}; static {roles.static or '-'}"
        + (f"; ignored non-numeric time-varying {roles.dropped}" if roles.dropped else "")
    )
    names = list(candidates) if candidates else default_members(config)
    if not candidates and lists_all(config.algorithms):
        log(
            "[engine] the request lists all six Autopilot algorithms, Autopilot's default set: training the default members"
        )
    unsuited = [n for n in names if n in CANDIDATES and not CANDIDATES[n].suits_panel(config, panel)]
    if unsuited:
        log(f"[engine] left out (nothing to add on this data): {', '.join(unsuited)}")
    names = [n for n in names if n not in unsuited]
    params = candidate_params or {}
    wanted = config.windows_for(panel.lengths)
    windows = backtest_windows(
        panel, config, log, extra=extra_windows_affordable(names, panel.n_series, config, wanted)
    )
    objective_key = OBJECTIVE_KEYS[config.objective]
    results = {}
    bt_deadline = (started + float(limit) * (1 - REFIT_SHARE)) if limit else None
    for position, name in enumerate(names):
        label = display_name(name)
        remaining = len(names) - position
        cand_deadline = None
        if bt_deadline is not None and name != BASELINE:
            cand_deadline = time.monotonic() + max(bt_deadline - time.monotonic(), 0) / remaining * 2
            cand_deadline = min(cand_deadline, bt_deadline)
        cls = CANDIDATES.get(name)  # an unknown name fails in create() below, as a contained failure
        if cls is not None and cls.per_series_statistical and config.statistical_budget_seconds:
            # per-series searches grow with the series count: a default budget keeps a job without a
            # tight limit (Autopilot's default is days) from spending an hour on a minor member
            own = time.monotonic() + float(config.statistical_budget_seconds)
            cand_deadline = own if cand_deadline is None else min(cand_deadline, own)
        record = {"name": name, "label": label, "forecasts": [], "fit_s": 0.0, "predict_s": 0.0, "status": "ok"}
        too_costly = config.too_costly_for_panel(name, panel.n_series, len(windows), len(names))
        if too_costly:  # a large panel: skipped before it starts, not after minutes of proving it
            record["status"] = f"skipped: {too_costly}"
            log(f"  {label:<48} {record['status']}")
            results[name] = record
            continue
        try:
            if _screens(cls, panel.n_series, [n for n in results if results[n]["status"] == "ok"]):
                verdict = _screen(name, config, params.get(name, {}), windows, results, cand_deadline, record)
                if verdict:
                    record["status"] = verdict
                    log(f"  {label:<48} {verdict}")
                    results[name] = record
                    continue
            model = None
            for w, window in enumerate(windows, 1):
                head, future, actual, scales = window.head(), window.future, window.actual, window.scales
                if model is None or not _carries_over(model, panel.n_series):
                    model = create(name, config, **params.get(name, {}))
                    # lets a budgeted model project its whole cost: the fits the later windows repeat
                    model.windows_after = 0 if _carries_over(model, panel.n_series) else len(windows) - w
                    model.fit(head, deadline=cand_deadline)
                    record["fit_s"] += model.fit_seconds
                forecast = model.forecast(head, future, deadline=cand_deadline)
                values = forecast.values
                fell_back = _fallback_note(forecast.fallbacks, name, head.n_series)
                record["model"] = model
                record["predict_s"] += forecast.seconds
                record["forecasts"].append(values)
                _check_projection(model, name, cand_deadline, record, w, len(windows))
                s = score_all(actual, values, config.quantiles, scales)
                log(
                    f"  {label:<48} window {w}/{len(windows)}: {objective_key} {s[objective_key]:.4f}  "
                    f"(fit {model.fit_seconds:.1f}s, predict {forecast.seconds:.1f}s){fell_back}"
                )
                del head  # one window's history alive at a time
        except TimeBudgetExceeded as exc:
            record["status"] = f"skipped: {exc}"
        except Exception as exc:  # contained: one candidate's failure never stops the job
            if name == BASELINE:
                raise
            record["status"] = f"failed: {type(exc).__name__}: {exc}"
            log("".join(traceback.format_exception_only(type(exc), exc)).strip())
        if record["status"] != "ok":
            log(f"  {label:<48} {record['status']}")
        results[name] = record
    ok = [n for n in names if results[n]["status"] == "ok"]
    actual_all = [w.actual for w in windows]
    scales_all = [w.scales for w in windows]
    for n in ok:
        results[n]["scores"] = _score_windows(actual_all, results[n]["forecasts"], scales_all, config)
    weights = _ensemble(ok, results, windows, config)
    pruned = _prunable(ok, weights) if panel.n_series >= SCREEN_MIN_SERIES else []
    if pruned:
        for n in pruned:
            share = float(np.mean(weights[n]))
            results[n]["status"] = (
                f"ok; pruned from the ensemble (weight {share:.3f} < {PRUNE_BELOW_WEIGHT}), weights re-fitted without it"
            )
            log(f"  {results[n]['label']:<48} {results[n]['status']}")
        weights = _ensemble([n for n in ok if n not in pruned], results, windows, config)
        weights.update({n: np.zeros(len(config.quantiles) + 1) for n in pruned})
    levels = config.quantile_levels
    # a target that is never negative in training (demand) gets forecasts that never are either
    non_negative = bool(np.nanmin(panel.y) >= 0) if np.isfinite(panel.y).any() else False
    raw = [combine({n: results[n]["forecasts"][w] for n in ok}, weights, levels) for w in range(len(windows))]
    spreads = [_holiday_spread(config, panel, window) for window in windows]
    factors = calibrate(
        np.concatenate(raw), np.concatenate(actual_all), levels, panel.n_series, _joined(spreads, raw, levels)
    )
    log(
        "[engine] interval calibration on the backtests (step 1 -> step H): "
        + describe_calibration(factors, config.quantiles)
    )
    ens_values = [
        combine({n: results[n]["forecasts"][w] for n in ok}, weights, levels, factors, non_negative, spreads[w])
        for w in range(len(windows))
    ]
    count_rows = [count_series(window.panel, config.season_length, window.n_tail) for window in windows]
    count_band = CountBand.learn(
        np.concatenate(ens_values), np.concatenate(actual_all), np.concatenate(count_rows), levels
    )
    if count_band is not None:
        log("[engine] " + count_band.describe(int(count_series(panel, config.season_length).sum()), panel.n_series))
        ens_values = [with_counts(v, count_band, rows, levels, non_negative) for v, rows in zip(ens_values, count_rows)]
    unseen_holidays = UnseenHolidays.learn(config.holiday_country, config.frequency_unit, panel, levels)
    if unseen_holidays is not None:
        log(
            "[engine] spread of the history's holiday effects (added near holidays it never saw): "
            + ", ".join(f"{q} {s:+.3f}" for q, s in zip(config.quantiles, unseen_holidays.spread))
        )
    coverage = _coverage(np.concatenate(actual_all), np.concatenate(ens_values), levels)
    if coverage is not None:
        log(
            f"[engine] backtest coverage of {config.quantiles[0]}-{config.quantiles[-1]} after calibration: "
            f"{coverage:.2f}"
        )
    ens_scores = _score_windows(actual_all, ens_values, scales_all, config)

    # refit the members on all data
    fitted = {}
    for n in ok:
        if not np.any(weights[n] > 0):
            continue
        try:
            latest = results[n].get("model")
            if latest is not None and latest.reuses_backtest_selection:
                # the latest window's fit is kept: model forms chosen in the backtests (before the
                # oldest window when the selection spans windows), whose parameters each prediction
                # re-estimates on its context, or a global model on short daily history, whose
                # features look back from each forecast's origin (LightGBMGlobal._keeps_backtest_fit)
                fitted[n] = latest
                log(f"[engine] {results[n]['label']}: keeps its latest backtest fit (no refit on all data)")
                continue
            fitted[n] = create(n, config, **params.get(n, {})).fit(panel, deadline=None if n == BASELINE else deadline)
            if fitted[n].fits_per_prediction:
                log(
                    f"[engine] {results[n]['label']}: nothing global to refit; each series is fitted on its context "
                    "at prediction"
                )
            else:
                log(f"[engine] refit {results[n]['label']} on all data ({fitted[n].fit_seconds:.1f}s)")
        except Exception as exc:
            if n == BASELINE:
                raise
            log(f"[engine] refit of {n} failed ({type(exc).__name__}: {exc}); dropped from the ensemble")
            weights[n] = np.zeros_like(weights[n])
    weights = _renormalise({n: weights[n] for n in fitted}, fitted)

    leaderboard = _leaderboard(names, results, weights, ens_scores, config)
    best_name = (
        ENSEMBLE_NAME
        if len([n for n in weights if weights[n].any()]) > 1
        else next(n for n in weights if weights[n].any())
    )
    best_value = (
        ens_scores[objective_key] if best_name == ENSEMBLE_NAME else results[best_name]["scores"][objective_key]
    )
    if best_name != ENSEMBLE_NAME:
        best_name = results[best_name]["label"]
    output_dir = Path(output_dir)
    forecast_model = ForecastModel(
        config,
        roles,
        static,
        fitted,
        weights,
        interval_factors=factors,
        unseen_holidays=unseen_holidays,
        count_band=count_band,
        metadata={
            "best_candidate_name": best_name,
            "objective_metric": config.objective,
            "objective_value": best_value,
            "series": int(panel.n_series),
            "train_end": str(pd.Timestamp(panel.ds.max())),
            "backtest_windows": len(windows),
            "train_seconds": round(time.monotonic() - started, 2),
            "non_negative": non_negative,
        },
    )
    model_dir = forecast_model.save(output_dir / "model", leaderboard)
    tmp = output_dir / f".{LEADERBOARD_FILE}.tmp"
    leaderboard.to_csv(tmp, index=False)
    tmp.replace(output_dir / LEADERBOARD_FILE)
    log("[engine] leaderboard (backtest, lower is better):")
    log(leaderboard_text(leaderboard))
    log(
        f"[engine] best: {best_name} ({config.objective} {best_value:.4f}); model at {model_dir}; "
        f"total {time.monotonic() - started:.1f}s"
    )
    return TrainResult(best_name, config.objective, float(best_value), leaderboard, model_dir)


def _holiday_spread(config: EngineConfig, panel: Panel, window: BacktestWindow) -> Optional[np.ndarray]:
    """A backtest window's (n, H, q) `UnseenHolidays` spread, learnt from the window's own history
    (None: nothing to widen); the backtests see the rule as the final model's forecasts will."""
    holidays = UnseenHolidays.learn(
        config.holiday_country, config.frequency_unit, panel, config.quantile_levels, window.n_tail, window.future.ds
    )
    return (
        None if holidays is None else holidays.spread_rows(window.future.ds, window.future.n_series, window.future.uids)
    )


def _joined(spreads: list, raw: list, levels) -> Optional[np.ndarray]:
    """The windows' spreads stacked as the backtest rows are (zeros for a window without), or None."""
    if all(s is None for s in spreads):
        return None
    q = len(levels)
    return np.concatenate([np.zeros((*r.shape[:2], q)) if s is None else s for s, r in zip(spreads, raw)])


def leaderboard_text(board: pd.DataFrame) -> str:
    """The leaderboard as a table for the log: numbers to 4 decimals, the status cut before its
    reason ("screened out", "ok; pruned from the ensemble") and left-aligned last, so no column is padded to the longest
    reason (each candidate's whole status is logged as it finishes, and kept in leaderboard.csv)."""
    shown = board.copy()
    status = shown.pop("status").astype(str) if "status" in shown.columns else None
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        lines = shown.to_string(index=False, float_format=lambda v: f"{v:.4f}").split("\n")
    if status is None:
        return "\n".join(lines)
    short = ["status"] + [re.split(r":| \(", text, maxsplit=1)[0].strip() for text in status.tolist()]
    return "\n".join(f"{line}  {tag}".rstrip() for line, tag in zip(lines, short))


def _carries_over(model, n_series: int) -> bool:
    """Whether the model fitted before a backtest window also forecasts the later ones: a global
    model (its features look back from each window's origin; tiny panels ask for a refit), or a
    per-series one whose fit only selects model forms that every prediction re-estimates on its
    own context (ETS, ARIMA: `selection_spans_windows`). Forms chosen on the older window's data
    see nothing of the later windows, so nothing leaks; the search is paid once, not per window."""
    if model.is_global:
        return not model.refit_every_window
    # small panels (under SCREEN_MIN_SERIES) search per window as before: cheap there, and on
    # departures (5 series) the pruned, carried-over variant cost 4% wQL (docs/engine.md)
    return bool(getattr(model, "selection_spans_windows", False)) and n_series >= SCREEN_MIN_SERIES


def _prunable(ok, weights) -> list:
    """Costly members whose (mean) ensemble weight is positive but under PRUNE_BELOW_WEIGHT."""
    out = []
    for n in ok:
        cls = CANDIDATES.get(n)
        share = float(np.mean(weights[n]))
        if n != BASELINE and _costly(cls) and _under_prune(share):
            out.append(n)
    return out


def _costly(cls) -> bool:
    """A registered candidate of relative cost COSTLY_RELATIVE_COST or more (pruned, screened)."""
    return cls is not None and cls.relative_cost >= COSTLY_RELATIVE_COST


def _under_prune(share: float) -> bool:
    """0 < share < PRUNE_BELOW_WEIGHT, up to the float noise of averaging multiples of 1/20."""
    return 1e-9 < share < PRUNE_BELOW_WEIGHT - 1e-9


def _screens(cls, n_series: int, done: list) -> bool:
    """Whether this candidate is first tried on a sample of series: a per-series statistical one,
    on a panel large enough to sample, after some other member than the baseline has its backtests."""
    return (
        _costly(cls)
        and cls.per_series_statistical
        and n_series >= SCREEN_MIN_SERIES
        and any(n != BASELINE for n in done)
    )


def _screen(name, config, params, windows, results, deadline, record) -> Optional[str]:
    """Backtest `name` on SCREEN_SERIES evenly spaced series and weigh it, on those series, in an
    ensemble with the candidates done so far. A status saying why it is screened out, or None
    (it would keep PRUNE_BELOW_WEIGHT or more: the full backtests follow). The seconds count in
    its leaderboard row."""
    done = [n for n in results if results[n]["status"] == "ok"]
    uids = windows[-1].future.uids
    sample = set(uids[np.unique(np.linspace(0, len(uids) - 1, SCREEN_SERIES).round().astype(int))].tolist())
    sample_windows: list = []
    forecasts: Dict[str, list] = {n: [] for n in [*done, name]}
    for w, window in enumerate(windows):
        idx = np.flatnonzero([u in sample for u in window.future.uids])
        if not len(idx):
            continue
        head = window.head().subset(idx)
        model = create(name, config, **params)
        model.windows_after = 0
        model.fit(head, deadline=deadline)
        forecast = model.forecast(head, window.future.subset(idx), deadline=deadline)
        _fallback_note(forecast.fallbacks, name, head.n_series)  # fails a candidate that fits no series
        record["fit_s"] += model.fit_seconds
        record["predict_s"] += forecast.seconds
        forecasts[name].append(forecast.values)
        for n in done:
            forecasts[n].append(results[n]["forecasts"][w][idx])
        sample_windows.append(dataclasses.replace(window, actual=window.actual[idx], scales=window.scales[idx]))
        del head
    trial = {n: {"forecasts": f} for n, f in forecasts.items()}
    weights = _ensemble([*done, name], trial, sample_windows, config)
    share = float(np.mean(weights[name]))
    key = OBJECTIVE_KEYS[config.objective]
    score = _score_windows(
        [w.actual for w in sample_windows], forecasts[name], [w.scales for w in sample_windows], config
    )
    there = f"a {len(sample)}-series sample ({key} there {score[key]:.4f}, weight {share:.3f})"
    if _under_prune(share) or share <= 1e-9:
        return f"screened out: weight {share:.3f} < {PRUNE_BELOW_WEIGHT} in the ensemble on {there}; full backtests not run"
    # the sample's seconds per series project the full backtests: past the budget, stop now
    # rather than after a full window (Prophet on the seed, under load: ~180 s a window)
    sampled = sum(len(w.actual) for w in sample_windows)
    projected = (record["fit_s"] + record["predict_s"]) / max(sampled, 1) * sum(len(w.actual) for w in windows)
    if deadline is not None and time.monotonic() + projected > deadline:
        left = max(deadline - time.monotonic(), 0)
        return (
            f"skipped: projected ~{projected:.0f}s of backtests from {there}, over its time budget ({left:.0f}s left)"
        )
    return None


def _fallback_note(fallbacks: Fallbacks, name: str, n_series: int) -> str:
    """Per-series models stand seasonal naive in for series they cannot fit: say how many, and
    fail the candidate when that is every series (a broken install must not pass as the model)."""
    fell = fallbacks.count
    if not fell:
        return ""
    if fell >= n_series:
        raise RuntimeError(
            f"{name} fell back to seasonal naive on every series; first reason: {fallbacks.first_reason}"
        )
    return f"; {fell} of {n_series} series fell back to seasonal naive ({fallbacks.first_reason})"


def _check_projection(model, name, deadline, record, done: int, total: int):
    """Skip now rather than at the deadline when the windows done so far say the rest won't fit."""
    if deadline is None or done >= total or name == BASELINE or model.is_global:
        return
    per_window = (record["fit_s"] + record["predict_s"]) / done
    left = deadline - time.monotonic()
    if per_window * (total - done) > left:
        raise TimeBudgetExceeded(
            f"{model.name} needs ~{per_window:.0f}s per backtest window, "
            f"{total - done} more window(s) would exceed its time budget ({max(left, 0):.0f}s left)"
        )


def _score_windows(actuals, forecasts, scales, config) -> dict:
    """Metrics over all windows pooled (the series x steps of every window together)."""
    actual = np.concatenate(actuals, axis=0)
    values = np.concatenate(forecasts, axis=0)
    return score_all(actual, values, config.quantiles, np.concatenate(scales))


def _ensemble(ok, results, windows, config) -> dict:
    """Weights per output column by greedy selection on the pooled backtest forecasts."""
    actual = np.concatenate([w.actual for w in windows], axis=0).ravel()
    scale = np.concatenate([np.repeat(w.scales, w.actual.shape[1]) for w in windows])
    n_out = len(config.quantiles) + 1
    weights = {n: np.zeros(n_out) for n in ok}
    derived_mean = straddles_median(config.quantile_levels)
    for j in range(n_out):
        if j == n_out - 1 and derived_mean:
            # the mean is that of the ensemble's quantiles (ensemble.combine); its weight column
            # records each member's average share of them
            for n in ok:
                weights[n][j] = weights[n][:-1].mean()
            continue
        preds = np.stack([np.concatenate(results[n]["forecasts"], axis=0)[:, :, j].ravel() for n in ok])
        if j < len(config.quantiles):
            loss = pinball_loss(actual, config.quantile_levels[j])
        else:
            loss = point_loss(actual, config.objective, scale)
        for n, w in zip(ok, caruana_weights(preds, loss)):
            weights[n][j] = w
    return weights


def _coverage(actual, values, levels):
    """Share of backtest actuals inside the outermost quantiles (None without a two-sided band)."""
    if len(levels) < 2 or not straddles_median(levels):
        return None
    return float(np.mean((actual >= values[..., 0]) & (actual <= values[..., -2])))


def _renormalise(weights: dict, fitted: dict) -> dict:
    total = sum(weights.values())
    if not np.all(total > 0):  # every member of some output was dropped: fall back to the baseline
        weights = {n: np.zeros_like(w) for n, w in weights.items()}
        weights[BASELINE] = np.ones_like(next(iter(weights.values())))
        total = sum(weights.values())
    return {n: w / total for n, w in weights.items()}


def _leaderboard(names, results, weights, ens_scores, config) -> pd.DataFrame:
    rows = []
    for n in names:
        r = results[n]
        s = r.get("scores", {})
        rows.append(
            {
                "candidate": r["label"],
                "wQL": s.get("wQL"),
                "WAPE": s.get("WAPE"),
                "MAPE": s.get("MAPE"),
                "MASE": s.get("MASE"),
                "RMSE": s.get("RMSE"),
                "fit_seconds": round(r["fit_s"], 2),
                "predict_seconds": round(r["predict_s"], 2),
                "ensemble_weight": float(np.mean(weights[n])) if n in weights else 0.0,
                "status": r["status"],
            }
        )
    rows.append(
        {
            "candidate": ENSEMBLE_NAME,
            **ens_scores,
            "fit_seconds": np.nan,
            "predict_seconds": np.nan,
            "ensemble_weight": np.nan,
            "status": "ok",
        }
    )
    board = pd.DataFrame(rows)
    key = OBJECTIVE_KEYS[config.objective]
    return board.sort_values(key, na_position="last", kind="stable").reset_index(drop=True)
