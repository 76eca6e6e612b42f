"""Engine configuration, read from the same CreateAutoMLJobV2 request SageMaker receives.

The request is the single source of truth: the local engine must behave like Autopilot for
the job the pipeline would submit, so we parse Autopilot's own fields instead of inventing
parallel settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from processing.kernel import contracts
from processing.kernel.contracts import DEFAULT_QUANTILES, pandas_frequency, season_length, split_frequency

OBJECTIVES = ("AverageWeightedQuantileLoss", "MAPE", "WAPE", "RMSE", "MASE")
AGGREGATIONS = contracts.AGGREGATIONS

# Wall seconds per series and backtest window (fit + predict, both cores) of the candidates whose
# work grows with every series, as measured on the project's shared two-core machine while busy
# (load 6-10; a quiet machine is 3-5x faster): ETS 0.126 (1,000 series) and 0.115 (5,000), ARIMA
# 0.124 and Prophet 0.38 (1,000), DeepAR 0.039 of sampling per window plus a 60-125 s fit (5,000);
# AirlineARIMA 0.027 CPU s (145 monthly series, load 8).
# The others cost milliseconds per series (seasonal naive, NPTS) or are bounded by a row sample
# (LightGBM's max_rows).
PER_SERIES_SECONDS = {"ETS": 0.12, "ARIMA": 0.12, "Theta": 0.06, "Prophet": 0.38, "DeepAR": 0.04, "AirlineARIMA": 0.03}
FIXED_SECONDS = {"DeepAR": 60.0}
# Left out before it starts when projected past this multiple of its budget: the in-flight
# projection still stops the borderline ones, a hopeless one should not spend minutes proving it.
UPFRONT_SKIP_FACTOR = 1.5
# the history (in horizons) the oldest extra backtest window of a short panel leaves the typical series
WINDOW_HISTORY_HORIZONS = 2


def quantile_level(name: str) -> float:
    """'p10' -> 0.1 ; Autopilot names quantiles p1..p99 (contracts.QUANTILE_NAME: no decimals)."""
    level = contracts.quantile_fraction(str(name).strip())
    if level is None:
        raise ValueError(
            f"ForecastQuantiles entry {name!r} is not of the form pNN with 0 < NN < 100 (for example p10, p50, p90)"
        )
    return level


@dataclasses.dataclass
class EngineConfig:
    """Everything the engine needs to know about the job (user column names kept as given)."""

    item_id_column: str = "item_id"
    timestamp_column: str = "timestamp"
    target_column: str = "target_value"
    grouping_columns: tuple = ()
    frequency: str = "D"
    horizon: int = 14
    quantiles: tuple = DEFAULT_QUANTILES
    objective: str = "AverageWeightedQuantileLoss"
    algorithms: Optional[tuple] = None  # Autopilot names; None = the default preset
    holiday_country: Optional[str] = None
    filling: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    aggregation: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_runtime_seconds: Optional[float] = None
    # backtest budget of each per-series statistical candidate (ETS, ARIMA, Theta) when the job's
    # own limit does not give a tighter one: past it the candidate is skipped and logged
    statistical_budget_seconds: Optional[float] = 240.0
    backtest_windows: int = 2
    # short panels get more windows (up to this many) until about `backtest_points` backtest
    # forecasts: two horizons of 8 series are too few to choose weights and interval widths on.
    # Only when every candidate is cheap per window (the default preset; not ETS/ARIMA/Theta/Prophet)
    max_backtest_windows: int = 5
    backtest_points: int = 1000
    preset: str = "default"
    seed: int = 0

    def __post_init__(self):
        self.grouping_columns = tuple(self.grouping_columns or ())
        self.quantiles = tuple(self.quantiles or DEFAULT_QUANTILES)
        split_frequency(self.frequency)  # raises a clear error for bad frequencies
        for q in self.quantiles:
            quantile_level(q)
        # ascending: the engine reads the outer quantiles as the first and last (p90,p10 -> p10,p90)
        self.quantiles = tuple(sorted(self.quantiles, key=quantile_level))
        if int(self.horizon) < 1:
            raise ValueError(f"ForecastHorizon must be a positive integer, got {self.horizon!r}")
        self.horizon = int(self.horizon)
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"AutoMLJobObjective.MetricName {self.objective!r} is not supported; use one of {', '.join(OBJECTIVES)}"
            )
        for column, how in dict(self.aggregation).items():
            if how not in AGGREGATIONS:
                raise ValueError(
                    f"Transformations.Aggregation[{column!r}] = {how!r}; use one of {', '.join(AGGREGATIONS)}"
                )
        if self.backtest_windows < 1:
            raise ValueError("backtest_windows must be at least 1")
        self.max_backtest_windows = max(int(self.max_backtest_windows), self.backtest_windows)

    def windows_for(self, lengths) -> int:
        """Backtest windows for series of these lengths: `backtest_windows`, more when the panel
        is small, as long as every window leaves most series a history of several horizons
        (and two seasons)."""
        import numpy as np

        lengths = np.asarray(lengths, int)
        H = self.horizon
        per_window = max(len(lengths) * H, 1)
        wanted = int(np.clip(-(-self.backtest_points // per_window), self.backtest_windows, self.max_backtest_windows))
        # two horizons (and two seasons) of history at the oldest window: with three, the 8-series
        # quarterly aus_accommodation got 2-5 windows and its 2008 window scored 0.117 (2 horizons:
        # 3-5 windows, 0.106; docs/engine.md "Calibration attempts")
        need = max(WINDOW_HISTORY_HORIZONS * H, 2 * self.season_length + 2)
        typical = int(np.median(lengths)) if len(lengths) else 0
        fits = (typical - need) // H
        return int(max(self.backtest_windows, min(wanted, fits)))

    # --- derived -----------------------------------------------------------------------
    @property
    def pandas_frequency(self) -> str:
        return pandas_frequency(self.frequency)

    @property
    def season_length(self) -> int:
        return season_length(self.frequency)

    @property
    def frequency_unit(self) -> str:
        return split_frequency(self.frequency)[1]

    @property
    def quantile_levels(self) -> tuple:
        return tuple(quantile_level(q) for q in self.quantiles)

    def candidate_budget_seconds(self, candidates: int = 1) -> Optional[float]:
        """One candidate's backtest budget: the per-series budget, or its share of the job's limit
        (the engine gives each up to twice its fair share of the 75% kept for backtests)."""
        budgets = [float(self.statistical_budget_seconds)] if self.statistical_budget_seconds else []
        if self.max_runtime_seconds:
            budgets.append(float(self.max_runtime_seconds) * 0.75 / max(candidates, 1) * 2)
        return min(budgets) if budgets else None

    def too_costly_for_panel(self, name: str, n_series: int, windows: int, candidates: int = 1) -> Optional[str]:
        """Why `name` is left out for a panel of `n_series` before it starts (None: it may run).

        Per-series costs grow with the panel while these candidates' ensemble weights stay small:
        at 25,000 series ETS alone would need ~100 minutes of backtests and DeepAR ~35, so a large
        panel trains the candidates that scale (seasonal naive, NPTS, the global LightGBM model)."""
        per_series = PER_SERIES_SECONDS.get(name)
        budget = self.candidate_budget_seconds(candidates)
        if per_series is None or budget is None:
            return None
        projected = FIXED_SECONDS.get(name, 0.0) + per_series * n_series * max(windows, 1)
        if projected <= UPFRONT_SKIP_FACTOR * budget:
            return None
        return (
            f"{name}: projected ~{projected:.0f}s of backtests for {n_series} series x {windows} window(s), "
            f"over {UPFRONT_SKIP_FACTOR:g}x its time budget ({budget:.0f}s); left out for this panel size"
        )

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["grouping_columns"] = list(self.grouping_columns)
        out["quantiles"] = list(self.quantiles)
        out["algorithms"] = list(self.algorithms) if self.algorithms is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown EngineConfig fields {sorted(unknown)}; known: {sorted(fields)}")
        data = dict(data)
        if data.get("algorithms") is not None:
            data["algorithms"] = tuple(data["algorithms"])
        return cls(**data)

    @classmethod
    def from_automl_request(cls, request: Mapping[str, Any], **overrides) -> "EngineConfig":
        """Read a CreateAutoMLJobV2 request dict (AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig)."""
        try:
            ts = request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]
        except (KeyError, TypeError):
            raise ValueError(
                "the request has no AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig: "
                "pass the CreateAutoMLJobV2 request of a time-series forecasting job"
            ) from None
        names = ts.get("TimeSeriesConfig") or {}
        missing = [
            k
            for k in ("TargetAttributeName", "TimestampAttributeName", "ItemIdentifierAttributeName")
            if not names.get(k)
        ]
        if missing:
            raise ValueError(f"TimeSeriesForecastingJobConfig.TimeSeriesConfig is missing {', '.join(missing)}")
        if "ForecastFrequency" not in ts or "ForecastHorizon" not in ts:
            raise ValueError("TimeSeriesForecastingJobConfig needs ForecastFrequency and ForecastHorizon")
        transformations = ts.get("Transformations") or {}
        holiday = ts.get("HolidayConfig") or []
        algorithms = None
        for entry in (ts.get("CandidateGenerationConfig") or {}).get("AlgorithmsConfig") or []:
            algorithms = tuple(entry.get("AutoMLAlgorithms") or ()) or None
        completion = ts.get("CompletionCriteria") or request.get("AutoMLJobConfig", {}).get("CompletionCriteria") or {}
        objective = (request.get("AutoMLJobObjective") or {}).get("MetricName") or "AverageWeightedQuantileLoss"
        values = dict(
            item_id_column=names["ItemIdentifierAttributeName"],
            timestamp_column=names["TimestampAttributeName"],
            target_column=names["TargetAttributeName"],
            grouping_columns=tuple(names.get("GroupingAttributeNames") or ()),
            frequency=ts["ForecastFrequency"],
            horizon=int(ts["ForecastHorizon"]),
            quantiles=tuple(ts.get("ForecastQuantiles") or DEFAULT_QUANTILES),
            objective=objective,
            algorithms=algorithms,
            holiday_country=(holiday[0].get("CountryCode") if holiday else None),
            filling=dict(transformations.get("Filling") or {}),
            aggregation=dict(transformations.get("Aggregation") or {}),
            max_runtime_seconds=completion.get("MaxAutoMLJobRuntimeInSeconds"),
        )
        values.update(overrides)
        return cls(**values)
