"""Data preparation for the training pipeline: read, validate, align, fill, split, profile.

Pure functions shared by the PrepareData step script (processing/prepare.py), the local
runtime and the tests. Runs inside the SageMaker scikit-learn processing container: standard
library, numpy and pandas only (the image's pins: pipelines/processing_image.toml), plus
processing.kernel.contracts.

Rules (docs/data.md has the user-facing version):
- Series = item id + grouping columns. Extra numeric columns that vary within a series are
  covariates (related time series); columns constant within every series are static.
  Text columns that vary in time are dropped with a warning (Autopilot takes numeric ones).
- Timestamps are aligned to the ForecastFrequency grid (floored to the period; weekly periods
  are labelled by their Sunday, monthly by the 1st); rows falling into the same period of a
  series are aggregated: target with the Aggregation rule (sum default; avg, first, min, max),
  covariates by mean, static columns by first value.
- Filling follows Autopilot's Transformations.Filling: every series runs from its first
  observation (frontfill none) to the dataset's last timestamp; gaps inside a series use
  middlefill, periods after the series' last observation use backfill. Defaults: target
  middlefill=zero, backfill=zero; covariates middlefill=zero, backfill=zero, futurefill=zero.
  mean/median/min/max use the 64 most recent observed entries before the gap. Methods are
  Autopilot's (zero, value, median, mean, min, max); Amazon Forecast's 'nan' is refused.
- Series with fewer than MIN_HISTORY_PERIODS (or `horizon`, if larger) periods before the
  holdout are dropped and listed with the reason; no surviving series is an error.
- Horizon: at most 500 and at most a quarter of the dataset's timesteps (Autopilot's limits).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing import atomic, tables
from processing.kernel import contracts
from processing.kernel.contracts import default_filling  # noqa: F401  (re-exported: data_prep.default_filling)
from processing.kernel.hints import closest, suggest

logger = logging.getLogger(__name__)

MIN_HISTORY_PERIODS = 4  # periods before the holdout, at least (or the horizon if larger)
MAX_HORIZON = 500  # Autopilot's ForecastHorizon limit
STAT_WINDOW = 64  # Autopilot: mean/median/min/max over the 64 most recent entries
SHOW_ROWS = 5  # offending rows quoted in an error message
# |target| and |covariate| at most this: float64 still holds whole units (2**53 ~ 9e15), and
# squares and sums over a series stay far from overflow
MAX_ABS_VALUE = 1e15
AGGREGATIONS = contracts.AGGREGATIONS
FILL_METHODS = ("zero", "value", "median", "mean", "min", "max")  # TimeSeriesTransformations.Filling
FILL_KEYS = ("frontfill", "middlefill", "backfill", "futurefill")
DUPLICATE_POLICIES = ("aggregate", "reject")
NEGATIVE_POLICIES = ("reject", "clip", "keep")
CSV_SUFFIXES = tables.CSV_SUFFIXES
PARQUET_SUFFIXES = tables.PARQUET_SUFFIXES
DATA_SUFFIXES = tables.DATA_SUFFIXES


class DataValidationError(ValueError):
    """Bad input: the message names the file, column and rows, and says how to fix it."""


@dataclasses.dataclass(frozen=True)
class PrepConfig:
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    target: str = "target_value"
    grouping: Tuple[str, ...] = ()
    frequency: str = "D"
    horizon: int = 14
    aggregation: str = "sum"
    filling: Optional[Mapping[str, Mapping[str, Any]]] = None  # user overrides, Autopilot format
    duplicates: str = "aggregate"
    negative_targets: str = "clip"
    backtest_max_bytes: int = contracts.TRANSFORM_FILE_MAX_BYTES  # one transform request per file

    @property
    def keys(self) -> List[str]:
        return [self.item_id] + list(self.grouping)


InputTable = tables.Table  # rows of all input files, with where each row came from


@dataclasses.dataclass
class PrepResult:
    """The aligned, filled grid (train column order) plus masks; frames are built on demand."""

    columns: Dict[str, np.ndarray]
    in_holdout: np.ndarray  # last `horizon` periods of each series
    valid: np.ndarray  # target present (every filled period is)
    series: np.ndarray  # series number per grid row (rows of a series are contiguous)
    per_series: Dict[str, np.ndarray]  # key and static columns: one value per series number
    profile: Dict[str, Any]
    config: PrepConfig

    @property
    def train_mask(self) -> np.ndarray:
        return ~self.in_holdout & self.valid

    @property
    def backtest_mask(self) -> np.ndarray:
        return self.train_mask | self.in_holdout

    @property
    def holdout_columns(self) -> List[str]:
        c = self.config
        return [c.item_id] + list(c.grouping) + [c.timestamp, c.target]

    def _frame(self, mask: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
        return pd.DataFrame({n: self.columns[n][mask] for n in names}, columns=list(names))

    @property
    def train(self) -> pd.DataFrame:
        return self._frame(self.train_mask, list(self.columns))

    @property
    def holdout(self) -> pd.DataFrame:
        return self._frame(self.in_holdout & self.valid, self.holdout_columns)

    @property
    def backtest(self) -> pd.DataFrame:
        frame = self._frame(self.backtest_mask, list(self.columns))
        frame.loc[self.in_holdout[self.backtest_mask], self.config.target] = np.nan
        return frame


# --------------------------------------------------------------------------------- reading
def list_input_files(path: str | os.PathLike) -> List[Path]:
    """One file, or every csv/parquet (optionally .gz) file under a folder, in name order."""
    try:
        return tables.list_files(path, DATA_SUFFIXES, "input")
    except tables.TableError as error:
        raise DataValidationError(
            f"{error}. Fix: pass InputDataUrl (--param InputDataUrl=) a CSV/Parquet "
            "file or a folder of them (one or more files with the same columns)."
        ) from None


def read_input(path: str | os.PathLike, config: PrepConfig) -> InputTable:
    """Read a file or folder with the project's one reader (processing.tables): ids and grouping as text."""
    list_input_files(path)
    try:
        table = tables.read_table(path, config.keys, suffixes=DATA_SUFFIXES, categorical=True, numeric=(config.target,))
    except tables.TableError as error:
        raise DataValidationError(str(error)) from None
    frame = table.frame
    for column in frame.columns:  # 0/1 flags and calendar numbers read as int64: 8 bytes a row each
        if frame[column].dtype == np.int64:
            frame[column] = frame[column].astype(lean_int_dtype(frame[column].to_numpy()))
    return table


def lean_int_dtype(values: np.ndarray) -> np.dtype:
    """The smallest signed integer type that holds every value (the CSV text is the same)."""
    if not len(values):
        return np.dtype(np.int64)
    low, high = int(np.min(values)), int(np.max(values))
    for kind in (np.int8, np.int16, np.int32):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return np.dtype(kind)
    return np.dtype(np.int64)


# ------------------------------------------------------------------------------ validation
def param(name: str) -> str:
    """How a pipeline user sets a parameter: '--param ForecastHorizon=' (the step's own flag is not typeable)."""
    return f"--param {name}="


def check_columns(table: InputTable, config: PrepConfig) -> None:
    """Every required column present; all the missing ones are named at once, with a close match each."""
    required = [
        (config.item_id, "ItemIdColumn"),
        (config.timestamp, "TimestampColumn"),
        (config.target, "TargetColumn"),
    ] + [(g, "GroupingColumns") for g in config.grouping]
    available = [str(c) for c in table.frame.columns]
    missing, fixes = [], []
    for column, parameter in required:
        if column in table.frame.columns:
            continue
        close = closest(column, available, cutoff=0.5)
        missing.append(f"{column!r} ({parameter}){suggest(column, available, cutoff=0.5)}")
        value = "<columns>" if parameter == "GroupingColumns" else close if close else "<column>"
        fixes.append(
            f"pass {param(parameter)}{value}"
            if close
            else f"pass {param(parameter)}{value} naming {'existing columns' if value == '<columns>' else 'one of the columns'}"
        )
    if missing:
        word = "column" if len(missing) == 1 else "columns"
        raise DataValidationError(
            f"{', '.join(table.files[:3])}: required {word} {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; the columns are {available}. "
            f"Fix: {'; '.join(dict.fromkeys(fixes))}."
        )
    if len(config.grouping) > 5:
        raise DataValidationError(
            f"GroupingColumns ({param('GroupingColumns')}): {len(config.grouping)} columns "
            "given; Autopilot accepts at most 5. Fix: keep the 5 that matter most."
        )


Where = Callable[[np.ndarray], List[str]]  # row positions -> ["sales.csv line 7", ...]


def _rows_message(table: InputTable, positions: np.ndarray, values=None) -> str:
    return rows_message(table.where, positions, values)


def rows_message(where: Where, positions: np.ndarray, values=None) -> str:
    """The first SHOW_ROWS offending rows as "sales.csv line 7 ('abc'), ... and 3 more"."""
    shown = positions[:SHOW_ROWS]
    parts = where(shown)
    if values is not None:
        shown_values = np.asarray(values[:SHOW_ROWS]).tolist()  # plain Python values: 3.0, 'abc'
        parts = [f"{p} ({v!r})" for p, v in zip(parts, shown_values)]
    more = f" and {len(positions) - SHOW_ROWS} more" if len(positions) > SHOW_ROWS else ""
    return ", ".join(parts) + more


def _guess_format(value: str) -> Optional[str]:
    from pandas.tseries.api import guess_datetime_format  # public since pandas 2.1 (the image has 2.2.3)

    try:
        return guess_datetime_format(value)
    except Exception:  # pandas raises on odd inputs in some versions
        return None


def parse_timestamps(
    table: InputTable, column: str, frequency: str = "D", warnings: Optional[List[str]] = None
) -> np.ndarray:
    """datetime64[ns] per row; one format for the whole column (the first value's).

    UTC offsets: every timestamp is read at its local (wall-clock) time, the offset dropped, so a
    sale at 2023-01-02T00:00:00+02:00 stays on 2 January instead of moving into the UTC day
    before (where it would be summed with that day's sales). At hourly or finer frequencies
    that rule could merge or reorder instants, so different offsets there are refused.
    """
    series = table.frame[column]
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series
        if getattr(series.dt, "tz", None) is not None:  # one zone (Parquet): its local time
            values = series.dt.tz_localize(None)
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise DataValidationError(
                f"column {column!r} (TimestampColumn): {len(bad)} empty timestamps: "
                f"{_rows_message(table, bad)}. Fix: fill in or remove those rows."
            )
        return values.to_numpy(dtype="datetime64[ns]")
    codes, uniques = pd.factorize(series)
    empty = np.flatnonzero(codes < 0)
    if len(empty):
        raise DataValidationError(
            f"column {column!r} (TimestampColumn): {len(empty)} empty timestamps: "
            f"{_rows_message(table, empty)}. Fix: fill in or remove those rows."
        )
    plain, offsets = tables.split_utc_offsets([str(u) for u in uniques])
    _check_offsets(table, column, frequency, codes, offsets, warnings)
    texts = pd.Index(plain)
    fmt = _guess_format(texts[0])
    if fmt is not None:
        parsed = pd.to_datetime(texts, format=fmt, errors="coerce")
    else:
        parsed = pd.to_datetime(texts, errors="coerce")
    bad_unique = np.flatnonzero(parsed.isna())
    if len(bad_unique):
        bad_rows = np.flatnonzero(np.isin(codes, bad_unique))
        values = [texts[c] for c in codes[bad_rows[:SHOW_ROWS]]]
        other = [v for v in values if _guess_format(v) is not None]
        kind = "mixed date formats" if other and fmt else "unparseable dates"
        first = table.where(np.array([0]))[0]
        expected = f"the format of the first row ({texts[codes[0]]!r} at {first}, read as {fmt})" if fmt else "a date"
        raise DataValidationError(
            f"column {column!r} (TimestampColumn): {kind}: {len(bad_rows)} rows do not match {expected}: "
            f"{_rows_message(table, bad_rows, values)}. Fix: write every timestamp in one format, "
            "preferably YYYY-MM-DD or YYYY-MM-DD HH:MM:SS."
        )
    return np.asarray(parsed.values, dtype="datetime64[ns]")[codes]


def _check_offsets(
    table: InputTable,
    column: str,
    frequency: str,
    codes: np.ndarray,
    offsets: List[Optional[str]],
    warnings: Optional[List[str]],
) -> None:
    """Different UTC offsets: refused below daily frequency (naming rows), else a warning stating the rule."""
    distinct = list(dict.fromkeys(offsets))
    if distinct == [None] or len(distinct) == 1:
        return
    per_unique = np.array([o or "none" for o in offsets], dtype=object)
    row_offsets = per_unique[codes]
    first = row_offsets[0]
    _, unit = contracts.split_frequency(frequency)
    if unit in ("H", "min"):
        other = np.flatnonzero(row_offsets != first)
        raise DataValidationError(
            f"column {column!r} (TimestampColumn): timestamps carry different UTC offsets "
            f"({', '.join(str(o or 'none') for o in distinct)}); {len(other)} rows differ from the first row's "
            f"({first}): {_rows_message(table, other, row_offsets[other])}. At frequency {frequency} reading them "
            "at local time could merge or reorder instants. Fix: write every timestamp with one offset (for "
            "example convert them all to UTC)."
        )
    if warnings is not None:
        counts = pd.Series(row_offsets).value_counts()
        warnings.append(
            f"column {column!r}: timestamps carry different UTC offsets "
            f"({', '.join(f'{o}: {n} rows' for o, n in counts.items())}); each was read at its local "
            "time (offset dropped), so every row stays in the period it was booked in."
        )


def parse_target(table: InputTable, column: str) -> np.ndarray:
    """Float target per row; text and infinity are errors, empty cells are NaN (checked later)."""
    return target_numbers(table.frame[column], column, table.where)


def target_numbers(series: pd.Series, column: str, where: Where) -> np.ndarray:
    """The one rule for the cells of a target column, PrepareData's and PrepareBatchInput's: numbers
    as floats, empty cells NaN (PrepareData fills or refuses them later; in a batch input they are
    the periods to forecast), text, infinity and values beyond MAX_ABS_VALUE refused with the rows
    and values (`where` names rows).

    A category column (the batch input's fast reader) is parsed once per distinct text."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        texts = series.cat.categories.to_numpy(dtype=object)
        numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=float)
        values = np.append(numbers, np.nan)[codes]  # code -1 (an empty cell): the NaN appended last
        bad = np.flatnonzero(np.isnan(numbers))  # a category is never empty: NaN means text
        text = np.flatnonzero(np.isin(codes, bad)) if len(bad) else np.empty(0, dtype=np.int64)
        cells = texts[codes[text]] if len(text) else texts[:0]
    else:
        if pd.api.types.is_bool_dtype(series):
            series = series.astype(float)
        if pd.api.types.is_numeric_dtype(series):
            values, text, cells = series.to_numpy(dtype=float), np.empty(0, dtype=np.int64), None
        else:
            numeric = pd.to_numeric(series, errors="coerce")
            text = np.flatnonzero((numeric.isna() & series.notna()).to_numpy())
            values, cells = numeric.to_numpy(dtype=float), series.to_numpy()[text]
    if len(text):
        raise DataValidationError(
            f"column {column!r} (TargetColumn): {len(text)} values are not numbers: "
            f"{rows_message(where, text, cells)}. Fix: make the target a plain number "
            "(decimal point '.', no thousands separators, currency or units), or remove those rows."
        )
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        raise DataValidationError(
            f"column {column!r} (TargetColumn): {len(infinite)} values are infinite: "
            f"{rows_message(where, infinite, values[infinite])}. Fix: replace them with the real quantity "
            "or remove those rows."
        )
    check_scale(where, column, "TargetColumn", values)
    return values


def check_scale(where: Where, column: str, role: str, values: np.ndarray, rows: Optional[np.ndarray] = None):
    """Refuse values beyond MAX_ABS_VALUE: sums, squares and float32 features overflow or lose every unit
    (rows named by `where`: PrepareBatchInput has no row table)."""
    with np.errstate(invalid="ignore"):
        huge = np.flatnonzero(np.abs(values) > MAX_ABS_VALUE)
    if len(huge):
        positions = huge if rows is None else rows[huge]
        raise DataValidationError(
            f"column {column!r} ({role}): {len(huge)} values are beyond +-{MAX_ABS_VALUE:.0e}, a scale at which "
            f"the forecasting arithmetic overflows or loses whole units: {rows_message(where, positions, values[huge])}. "
            "Fix: correct those values, or rescale the column (for example thousands of units)."
        )


# ------------------------------------------------------------------------- frequency grid
def period_ordinals(timestamps: np.ndarray, frequency: str) -> Tuple[np.ndarray, int]:
    """Integer period per timestamp (base unit) and the frequency's multiple."""
    count, unit = contracts.split_frequency(frequency)
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    if unit == "min":
        ords = ts.astype("datetime64[m]").astype(np.int64)
    elif unit == "H":
        ords = ts.astype("datetime64[h]").astype(np.int64)
    elif unit == "D":
        ords = ts.astype("datetime64[D]").astype(np.int64)
    elif unit == "W":
        ords = (ts.astype("datetime64[D]").astype(np.int64) + 3) // 7  # Monday-to-Sunday weeks
    elif unit == "M":
        ords = ts.astype("datetime64[M]").astype(np.int64)
    else:
        ords = ts.astype("datetime64[Y]").astype(np.int64)
    return ords, count


def period_labels(ordinals: np.ndarray, frequency: str) -> np.ndarray:
    """The timestamp that labels each base-unit period (the inverse of period_ordinals)."""
    _, unit = contracts.split_frequency(frequency)
    ords = np.asarray(ordinals, dtype=np.int64)
    numpy_unit = {"min": "m", "H": "h", "D": "D", "M": "M", "Y": "Y"}
    if unit == "W":
        return (ords * 7 + 3).astype("datetime64[D]").astype("datetime64[ns]")  # the Sunday
    return ords.astype(f"datetime64[{numpy_unit[unit]}]").astype("datetime64[ns]")


def format_timestamps(values: np.ndarray) -> np.ndarray:
    """'%Y-%m-%d' when every time is midnight, else '%Y-%m-%d %H:%M:%S' (object array)."""
    index = pd.DatetimeIndex(values)
    codes, uniques = pd.factorize(index)
    uniques = pd.DatetimeIndex(uniques)
    midnight = bool((uniques == uniques.normalize()).all())
    texts = np.asarray(uniques.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S"), dtype=object)
    return texts[codes]


# -------------------------------------------------------------------------------- filling
def resolve_filling(
    user: Optional[Mapping[str, Mapping[str, Any]]], target: str, covariates: Sequence[str]
) -> Dict[str, Dict[str, str]]:
    """Defaults overridden per column and key by the user's Filling; validated like Autopilot does."""
    filling = default_filling(target, covariates)
    for column, rules in (user or {}).items():
        if column not in filling:
            raise DataValidationError(
                f"--filling: column {column!r}{suggest(column, filling)} is neither the target nor a covariate "
                f"(numeric column varying in time); fillable columns are {sorted(filling)}."
            )
        if not isinstance(rules, Mapping):
            raise DataValidationError(
                f"--filling: {column!r} must map to a dict such as "
                '{"middlefill": "zero", "backfill": "value", "backfill_value": "0"}'
            )
        merged = dict(filling[column])
        merged.update({str(k): str(v) for k, v in rules.items()})
        filling[column] = merged
    for column, rules in filling.items():
        is_target = column == target
        for key, method in rules.items():
            if key.endswith("_value"):
                if key[: -len("_value")] not in FILL_KEYS:
                    raise DataValidationError(f"--filling: {column}.{key} is not a filling key ({FILL_KEYS}).")
                try:
                    float(method)
                except ValueError:
                    raise DataValidationError(f"--filling: {column}.{key}={method!r} is not a number.") from None
                continue
            if key not in FILL_KEYS:
                raise DataValidationError(f"--filling: {column}.{key} is not one of {FILL_KEYS} (or <key>_value).")
            if key == "frontfill":
                if not is_target or method != "none":
                    raise DataValidationError(
                        f"--filling: {column}.frontfill={method!r}: Autopilot accepts "
                        "frontfill only for the target and only 'none'."
                    )
                continue
            if key == "futurefill" and is_target:
                raise DataValidationError(
                    f"--filling: {column}.futurefill: the target has no future filling "
                    "(it is what is forecast); futurefill is for covariates."
                )
            if method not in FILL_METHODS:
                hint = (
                    " ('nan' is an Amazon Forecast method; Autopilot's Filling has no such option: use "
                    "'zero', or 'value' with a number)"
                    if method == "nan"
                    else ""
                )
                raise DataValidationError(
                    f"--filling: {column}.{key}={method!r} is not one of {FILL_METHODS}, "
                    f"the methods Autopilot's TimeSeriesTransformations.Filling accepts." + hint
                )
            if method == "value" and f"{key}_value" not in rules:
                raise DataValidationError(f"--filling: {column}.{key}='value' needs {key}_value (the number).")
    return filling


def rolling_statistic(values: np.ndarray, codes: np.ndarray, observed: np.ndarray, method: str) -> np.ndarray:
    """Per position: the statistic of the 64 most recent observed entries of its series so far."""
    obs = pd.Series(values[observed])
    rolled = obs.groupby(codes[observed]).rolling(STAT_WINDOW, min_periods=1)
    stat = getattr(rolled, method)().reset_index(level=0, drop=True).sort_index().to_numpy()
    full = pd.Series(np.full(len(values), np.nan))
    full.iloc[np.flatnonzero(observed)] = stat
    grouped = full.groupby(codes)
    return grouped.ffill().fillna(grouped.bfill()).to_numpy()  # leading gaps: the first window


def apply_fill(
    values: np.ndarray, codes: np.ndarray, missing: np.ndarray, region: np.ndarray, method: str, value: Optional[str]
) -> np.ndarray:
    """Fill values[missing & region] with one Autopilot method; returns a new array."""
    todo = missing & region
    out = values.copy()
    if not todo.any():
        return out
    if method == "zero":
        out[todo] = 0.0
    elif method == "value":
        out[todo] = float(value)
    else:
        stat = rolling_statistic(
            values, codes, ~missing, {"mean": "mean", "median": "median", "min": "min", "max": "max"}[method]
        )
        out[todo] = stat[todo]
    return out


# ------------------------------------------------------------------------------- the core
# prepare() is a short sequence of the sections below, in order: read (ids, timestamps, target;
# future rows out; sorted), validate (duplicates, negatives, column roles), grid (align to the
# frequency, series spans, horizon limits, short series dropped), fill, split, and the output
# columns plus profile. Each section takes what the one before returns and writes nothing.
@dataclasses.dataclass(frozen=True)
class _Rows:
    """The input rows that are history, sorted by series then time (one entry per row)."""

    codes: np.ndarray  # series number, in sorted key order
    ts: np.ndarray  # timestamp (datetime64[ns])
    ts_int: np.ndarray  # the same as int64, for comparisons
    y: np.ndarray  # target
    rows: np.ndarray  # positions in the input table


@dataclasses.dataclass(frozen=True)
class _Roles:
    """What each extra column is (Autopilot's column rules)."""

    covariates: List[str]
    static: List[str]
    dropped: List[str]


@dataclasses.dataclass(frozen=True)
class _Periods:
    """Rows on the frequency grid (one per series and period, aggregated) and per-series spans."""

    codes: np.ndarray
    steps: np.ndarray  # period number from the dataset's first period
    y: np.ndarray
    rows: np.ndarray  # input-table position of each period's first row
    cov_values: Dict[str, np.ndarray]
    anchor: int  # base-unit ordinal of period 0
    multiple: int
    n_series: int
    first_idx: np.ndarray  # first entry of each series
    first_step: np.ndarray
    last_step: np.ndarray
    obs_count: np.ndarray
    global_end: int

    @property
    def periods(self) -> int:
        return self.global_end + 1


@dataclasses.dataclass(frozen=True)
class _Grid:
    """The full grid of the kept series: every period from a series' first observation to the end."""

    kept: np.ndarray  # series numbers kept
    grid_len: np.ndarray  # grid rows per kept series
    total: int
    offsets: np.ndarray  # first grid row of each kept series
    g_series: np.ndarray  # series number per grid row
    g_step: np.ndarray  # period number per grid row
    obs_keep: np.ndarray  # which _Periods entries are on the grid
    pos: np.ndarray  # their grid rows
    observed: np.ndarray  # grid row has an observation
    middle: np.ndarray  # up to the series' last observation (middlefill), else backfill


def _min_history(horizon: int) -> int:
    return max(MIN_HISTORY_PERIODS, horizon)


def _key_codes(table: InputTable, keys: List[str]) -> List[np.ndarray]:
    """Codes per key column (sorted order); an empty identifier is an error naming the rows."""
    frame = table.frame
    key_codes = []
    for key in keys:
        codes_k, _ = pd.factorize(frame[key], sort=True)
        empty = np.flatnonzero(codes_k < 0)
        if len(empty):
            raise DataValidationError(
                f"column {key!r}: {len(empty)} rows have an empty value: "
                f"{_rows_message(table, empty)}. Fix: fill in the identifier or remove "
                "those rows."
            )
        key_codes.append(codes_k)
    return key_codes


def _history_rows(
    table: InputTable, config: PrepConfig, timestamps: np.ndarray, target: np.ndarray, warnings: List[str]
) -> np.ndarray:
    """Positions of the history rows: future rows (empty target after the last observed timestamp) are not."""
    has_target = ~np.isnan(target)
    if not has_target.any():
        raise DataValidationError(
            f"column {config.target!r} (TargetColumn): every value is empty. Fix: provide the sales history."
        )
    last_observed = timestamps[has_target].max()
    future = ~has_target & (timestamps > last_observed)
    if future.any():
        warnings.append(
            f"{int(future.sum())} rows after the last observed timestamp have an empty target; they "
            "were treated as future rows and left out of training."
        )
    missing_target = np.flatnonzero(~has_target & ~future)
    if len(missing_target):
        raise DataValidationError(
            f"column {config.target!r} (TargetColumn): {len(missing_target)} rows have an empty or NaN target: "
            f"{_rows_message(table, missing_target)}. Fix: remove those rows (missing periods are filled with "
            "the Filling rules: zero by default) or put the real value in."
        )
    return np.flatnonzero(~future)


def _series_codes(key_codes: List[np.ndarray], keep_rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Series number per kept row, in sorted key order."""
    if len(key_codes) == 1:
        codes = key_codes[0][keep_rows]
        if len(keep_rows) < n_rows:  # dense 0..n-1 again, in sorted key order
            _, codes = np.unique(codes, return_inverse=True)
    else:
        codes = (
            pd.DataFrame({i: c[keep_rows] for i, c in enumerate(key_codes)})
            .groupby(list(range(len(key_codes))), sort=True)
            .ngroup()
            .to_numpy()
        )
    return codes.astype(np.int64).reshape(-1)


def _sorted_rows(codes: np.ndarray, ts: np.ndarray, y: np.ndarray, rows: np.ndarray, warnings: List[str]) -> _Rows:
    """Stable sort by series, time; unsorted input is only a warning."""
    ts_int = ts.view(np.int64)
    order = np.lexsort((ts_int, codes))
    if not np.array_equal(order, np.arange(len(order))):
        by_code = np.argsort(codes, kind="stable")
        in_order = np.all((np.diff(codes[by_code]) != 0) | (np.diff(ts_int[by_code]) >= 0))
        blocks = int((np.diff(codes) != 0).sum()) + 1
        if not in_order or blocks != codes.max() + 1:
            warnings.append("rows were not sorted by item and timestamp; they were sorted.")
    return _Rows(codes[order], ts[order], ts_int[order], y[order], rows[order])


def _read_rows(table: InputTable, config: PrepConfig, warnings: List[str]) -> _Rows:
    """Identifiers, timestamps and target parsed and checked; future rows out; sorted by series, time."""
    key_codes = _key_codes(table, config.keys)
    timestamps = parse_timestamps(table, config.timestamp, config.frequency, warnings)
    target = parse_target(table, config.target)
    keep_rows = _history_rows(table, config, timestamps, target, warnings)
    codes = _series_codes(key_codes, keep_rows, len(table.frame))
    return _sorted_rows(codes, timestamps[keep_rows], target[keep_rows], keep_rows, warnings)


def _check_duplicates(table: InputTable, obs: _Rows, config: PrepConfig, warnings: List[str]) -> None:
    """Exact duplicates (same series and timestamp): refused, or a warning that they are aggregated."""
    keys = config.keys
    codes, ts_int, rows = obs.codes, obs.ts_int, obs.rows
    same_prev = np.r_[False, (codes[1:] == codes[:-1]) & (ts_int[1:] == ts_int[:-1])]
    if same_prev.any():
        dup_rows = rows[same_prev]
        if config.duplicates == "reject":
            first_dup = np.flatnonzero(same_prev)[:SHOW_ROWS]
            pairs = [f"{a} = {b}" for a, b in zip(table.where(rows[first_dup - 1]), table.where(rows[first_dup]))]
            raise DataValidationError(
                f"columns {keys + [config.timestamp]}: {len(dup_rows)} duplicate rows (same item"
                f"{', grouping' if config.grouping else ''} and timestamp): {'; '.join(pairs)}"
                f"{' and more' if len(dup_rows) > SHOW_ROWS else ''}. Fix: remove the duplicates, or run with "
                f"--duplicates aggregate to combine them with the Aggregation rule ({config.aggregation})."
            )
        warnings.append(
            f"{len(dup_rows)} duplicate rows (same item and timestamp, first: "
            f"{_rows_message(table, dup_rows)}) were combined with aggregation '{config.aggregation}'."
        )


def _negative_targets(table: InputTable, obs: _Rows, config: PrepConfig, warnings: List[str]) -> np.ndarray:
    """The target after the negative-targets rule (reject, clip to 0, keep)."""
    y, rows = obs.y, obs.rows
    negative = y < 0
    if negative.any():
        neg_rows = rows[negative]
        shown = _rows_message(table, neg_rows, y[negative])
        if config.negative_targets == "reject":
            raise DataValidationError(
                f"column {config.target!r} (TargetColumn): {len(neg_rows)} negative values: {shown}. Fix: correct "
                "them (returns are usually booked separately from demand), or run with --negative-targets clip "
                "(set them to 0) or keep."
            )
        if config.negative_targets == "clip":
            y = np.where(negative, 0.0, y)
            warnings.append(
                f"{len(neg_rows)} negative target values were set to 0 (negative targets are clipped by default): {shown}."
            )
        else:
            warnings.append(f"{len(neg_rows)} negative target values were kept (negative-targets rule: keep): {shown}.")
    return y


def _column_roles(table: InputTable, obs: _Rows, config: PrepConfig, warnings: List[str]) -> _Roles:
    """Extra columns: covariates (numeric, vary in time), static (constant per series), dropped (text varying)."""
    frame = table.frame
    codes, rows = obs.codes, obs.rows
    reserved = set(config.keys) | {config.timestamp, config.target}
    extra = [c for c in frame.columns if c not in reserved]
    covariates, static, dropped_columns = [], [], []
    boundary = np.r_[True, codes[1:] != codes[:-1]]
    for column in extra:
        column_codes, _ = pd.factorize(frame[column])
        values = column_codes[rows]
        varies = bool(np.any((values[1:] != values[:-1]) & ~boundary[1:]))
        numeric = pd.api.types.is_numeric_dtype(frame[column].dtype)
        if not varies:
            static.append(column)
        elif numeric:
            covariates.append(column)
        else:
            dropped_columns.append(column)
    if dropped_columns:
        warnings.append(
            f"text columns {dropped_columns} change over time within items; Autopilot takes only numeric "
            "related time series, so they were left out. Encode them as numbers to use them."
        )
    for column in covariates:
        values = frame[column].to_numpy(dtype=float)[rows]
        bad = np.flatnonzero(np.isinf(values))
        if len(bad):
            raise DataValidationError(
                f"column {column!r} (covariate): {len(bad)} infinite values: "
                f"{_rows_message(table, rows[bad])}. Fix: replace or remove them."
            )
        check_scale(table.where, column, "covariate", values, rows)
    return _Roles(covariates, static, dropped_columns)


def _align(
    frame: pd.DataFrame, obs: _Rows, covariates: Sequence[str], config: PrepConfig, warnings: List[str]
) -> _Periods:
    """Rows moved to the label of their period, rows meeting in a period aggregated; series spans."""
    codes, ts, ts_int, y, rows = obs.codes, obs.ts, obs.ts_int, obs.y, obs.rows
    base_ord, multiple = period_ordinals(ts, config.frequency)
    anchor = int(base_ord.min())
    steps = (base_ord - anchor) // multiple
    labels_moved = int((period_labels(anchor + steps * multiple, config.frequency).view(np.int64) != ts_int).sum())
    if labels_moved:
        warnings.append(
            f"{labels_moved} timestamps were not on the {config.frequency} grid; they were moved to the "
            "label of their period (and combined with the aggregation rule where they met)."
        )
    cov_values = {c: frame[c].to_numpy(dtype=float)[rows] for c in covariates}
    collide = np.r_[False, (codes[1:] == codes[:-1]) & (steps[1:] == steps[:-1])]
    if collide.any():
        codes, steps, y, rows, cov_values = _aggregate(codes, steps, y, rows, cov_values, config.aggregation)

    n_series = int(codes.max()) + 1
    first_idx = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    last_idx = np.r_[first_idx[1:] - 1, len(codes) - 1]
    first_step = steps[first_idx]
    last_step = steps[last_idx]
    obs_count = np.diff(np.r_[first_idx, len(codes)])
    global_end = int(steps.max())
    return _Periods(
        codes=codes,
        steps=steps,
        y=y,
        rows=rows,
        cov_values=cov_values,
        anchor=anchor,
        multiple=multiple,
        n_series=n_series,
        first_idx=first_idx,
        first_step=first_step,
        last_step=last_step,
        obs_count=obs_count,
        global_end=global_end,
    )


def _check_horizon(config: PrepConfig, periods: int) -> None:
    """Autopilot's horizon limits: at most MAX_HORIZON and at most a quarter of the timesteps."""
    horizon = config.horizon
    horizon_param = f"ForecastHorizon {horizon} ({param('ForecastHorizon')})"
    if horizon > MAX_HORIZON:
        raise DataValidationError(
            f"{horizon_param}: Autopilot's ForecastHorizon is at most {MAX_HORIZON}. "
            f"Fix: forecast fewer periods, or a coarser ForecastFrequency "
            f"({param('ForecastFrequency')})."
        )
    if horizon * 4 > periods:
        fix = (
            f"lower it ({param('ForecastHorizon')}{periods // 4} or less), or provide at least {horizon * 4} "
            "periods of history"
            if periods >= 4
            else f"provide at least {horizon * 4} periods of history (the data has {periods})"
        )
        raise DataValidationError(
            f"{horizon_param}: the data spans {periods} timestep{'s' if periods != 1 else ''} at frequency "
            f"{config.frequency}; Autopilot requires the horizon to be at most a quarter of them. Fix: {fix}."
        )


def _short_series(
    per: _Periods, key_table: pd.DataFrame, label_text: np.ndarray, config: PrepConfig, warnings: List[str]
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Which series are dropped (a single row, or too little history before the holdout), with the reason each."""
    keys = config.keys
    horizon = config.horizon
    n_series, first_step, series_end = per.n_series, per.first_step, _series_end(per)
    length = series_end - first_step + 1
    min_history = _min_history(horizon)
    dropped_items = []
    drop = np.zeros(n_series, dtype=bool)
    single = per.obs_count == 1
    short = length - horizon < min_history
    for s in np.flatnonzero(single | short):
        drop[s] = True
        ident = _series_name(key_table, s, keys)
        if single[s]:
            reason = (
                f"a single row ({label_text[first_step[s]]}); needs at least {min_history + horizon} periods "
                f"({min_history} history + {horizon} holdout)"
            )
        else:
            reason = (
                f"{int(length[s])} periods ({label_text[first_step[s]]} to {label_text[series_end[s]]}); "
                f"needs at least {min_history + horizon} ({min_history} history + {horizon} holdout)"
            )
        dropped_items.append(
            {
                "item_id": ident,
                "reason": reason,
                **({"grouping": {g: _plain(key_table.at[s, g]) for g in config.grouping}} if config.grouping else {}),
            }
        )
    if drop.all():
        raise DataValidationError(
            f"no item has enough history: every one of the {n_series} items has fewer than {min_history + horizon} "
            f"periods ({min_history} history + {horizon} holdout at frequency {config.frequency}); first: "
            f"{dropped_items[0]['item_id']}: {dropped_items[0]['reason']}. Fix: provide more history"
            + (f" or lower ForecastHorizon ({param('ForecastHorizon')})." if horizon > 1 else ".")
        )
    if drop.any():
        warnings.append(f"{int(drop.sum())} items with too little history were dropped (see dropped_items).")
    return drop, dropped_items


def _series_end(per: _Periods) -> np.ndarray:
    """Every series runs to the dataset's end (backfill)."""
    return np.full(per.n_series, per.global_end)


def _build_grid(per: _Periods, drop: np.ndarray) -> _Grid:
    """Grid rows of the kept series, and where each observed period lands on it."""
    codes, steps, first_step, series_end = per.codes, per.steps, per.first_step, _series_end(per)
    length = series_end - first_step + 1
    kept = np.flatnonzero(~drop)
    grid_len = length[kept]
    total = int(grid_len.sum())
    offsets = np.r_[0, np.cumsum(grid_len)[:-1]]
    # int32 row indices: a 25,000-series daily grid has 27M rows, and every int64 array of it is 0.2 GB
    g_series = np.repeat(kept.astype(np.int32), grid_len)
    g_step = (np.repeat(first_step[kept], grid_len) + (np.arange(total) - np.repeat(offsets, grid_len))).astype(
        np.int32
    )
    offset_of = np.full(per.n_series, -1)
    offset_of[kept] = offsets
    obs_keep = ~drop[codes] & (steps <= series_end[codes])
    pos = offset_of[codes[obs_keep]] + (steps[obs_keep] - first_step[codes[obs_keep]])
    observed = np.zeros(total, dtype=bool)
    observed[pos] = True
    g_last = np.repeat(per.last_step[kept], grid_len)
    middle = g_step <= g_last
    return _Grid(
        kept=kept,
        grid_len=grid_len,
        total=total,
        offsets=offsets,
        g_series=g_series,
        g_step=g_step,
        obs_keep=obs_keep,
        pos=pos,
        observed=observed,
        middle=middle,
    )


def _fill_target(per: _Periods, grid: _Grid, target_rules: Mapping[str, Any]) -> Tuple[np.ndarray, int]:
    """The target on the grid, gaps filled (middlefill, then backfill); and how many were filled."""
    g_series, middle = grid.g_series, grid.middle
    back = ~middle
    g_y = np.full(grid.total, np.nan)
    g_y[grid.pos] = per.y[grid.obs_keep]
    missing = ~grid.observed
    g_y = apply_fill(
        g_y, g_series, missing, middle, target_rules.get("middlefill", "zero"), target_rules.get("middlefill_value")
    )
    g_y = apply_fill(
        g_y, g_series, missing, back, target_rules.get("backfill", "zero"), target_rules.get("backfill_value")
    )
    return g_y, int(missing.sum())


def _fill_covariates(
    frame: pd.DataFrame, per: _Periods, grid: _Grid, covariates: Sequence[str], filling: Mapping[str, Mapping[str, Any]]
) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Each covariate on the grid, gaps filled by its rules; integer columns stay integer when whole."""
    g_series, middle = grid.g_series, grid.middle
    back = ~middle
    g_cov, filled_counts = {}, {}
    for column in covariates:
        values = np.full(grid.total, np.nan)
        values[grid.pos] = per.cov_values.pop(column)[grid.obs_keep]  # each input column is freed once on the grid
        gaps = np.isnan(values)
        rules = filling[column]
        values = apply_fill(
            values, g_series, gaps, middle, rules.get("middlefill", "zero"), rules.get("middlefill_value")
        )
        values = apply_fill(values, g_series, gaps, back, rules.get("backfill", "zero"), rules.get("backfill_value"))
        filled_counts[column] = int(gaps.sum())
        original = frame[column]
        if pd.api.types.is_integer_dtype(original.dtype) or pd.api.types.is_bool_dtype(original.dtype):
            if np.all(values == np.round(values)):
                values = values.astype(lean_int_dtype(values))
        g_cov[column] = values
    return g_cov, filled_counts


def _holdout_mask(grid: _Grid, horizon: int) -> np.ndarray:
    """Per position from the end: the holdout is the last `horizon` periods of each series."""
    from_end = np.repeat(grid.offsets + grid.grid_len, grid.grid_len) - 1 - np.arange(grid.total)
    return from_end < horizon


def _output_columns(
    frame: pd.DataFrame,
    per: _Periods,
    grid: _Grid,
    key_table: pd.DataFrame,
    labels_all: np.ndarray,
    g_y: np.ndarray,
    g_cov: Mapping[str, np.ndarray],
    roles: _Roles,
    config: PrepConfig,
) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], List[str]]:
    """The grid's columns in train order, the per-series (key and static) values, and that order."""
    keys = config.keys
    g_series = grid.g_series
    per_series = {k: key_table[k].to_numpy() for k in keys}
    g_keys = {k: per_series[k][g_series] for k in keys}
    g_label = labels_all[grid.g_step]
    g_static = {}
    for column in roles.static:
        first_values = frame[column].iloc[per.rows[per.first_idx]].to_numpy()  # static: the first row's value
        per_series[column] = first_values
        g_static[column] = first_values[g_series]
        if frame[column].dtype.kind in "iub" and not pd.isna(first_values).any():
            g_static[column] = g_static[column].astype(frame[column].dtype)
    train_columns = (
        [config.item_id, config.timestamp, config.target] + list(config.grouping) + roles.covariates + roles.static
    )
    columns = {
        config.item_id: g_keys[config.item_id],
        config.timestamp: g_label,
        config.target: g_y,
        **{g: g_keys[g] for g in config.grouping},
        **g_cov,
        **g_static,
    }
    columns = {name: columns[name] for name in train_columns}
    return columns, per_series, train_columns


def _all_zero_items(
    per: _Periods, drop: np.ndarray, key_table: pd.DataFrame, config: PrepConfig, warnings: List[str]
) -> int:
    """Items whose every sale is zero: kept, reported; returns how many."""
    observed_sum = np.bincount(per.codes, weights=np.abs(per.y), minlength=per.n_series)
    all_zero = np.flatnonzero((observed_sum == 0) & ~drop)
    if len(all_zero):
        names = [_series_name(key_table, s, config.keys) for s in all_zero[:SHOW_ROWS]]
        warnings.append(
            f"{len(all_zero)} items have only zero sales (kept; expect zero forecasts): "
            f"{', '.join(names)}{' and more' if len(all_zero) > SHOW_ROWS else ''}."
        )
    return int(len(all_zero))


def _profile(
    table: InputTable,
    config: PrepConfig,
    roles: _Roles,
    train_columns: List[str],
    per: _Periods,
    grid: _Grid,
    label_text: np.ndarray,
    kept_y: np.ndarray,
    counts: Mapping[str, int],
    filled_counts: Mapping[str, int],
    filling: Mapping[str, Any],
    dropped_items: List[Dict[str, Any]],
    warnings: List[str],
) -> Dict[str, Any]:
    """profile.json: what was read, kept, dropped, filled and warned about."""
    horizon = config.horizon
    global_end = per.global_end
    return {
        "columns": {
            "item_id": config.item_id,
            "timestamp": config.timestamp,
            "target": config.target,
            "grouping": list(config.grouping),
            "covariates": roles.covariates,
            "static": roles.static,
            "ignored": roles.dropped,
        },
        "train_columns": list(train_columns),  # the training CSV's header, in order (the inference schema)
        "frequency": config.frequency,
        "horizon": horizon,
        "items": int(len(grid.kept)),
        "periods": int(per.periods),
        "start": str(label_text[0]),
        "end": str(label_text[global_end]),
        "train_end": str(label_text[global_end - horizon]),
        "holdout_start": str(label_text[global_end - horizon + 1]),
        "share_of_zeros": round(float(np.mean(kept_y == 0)) if len(kept_y) else 0.0, 6),
        "dropped_items": dropped_items,
        "warnings": warnings,
        "rows_in": int(len(table.frame)),
        "rows_train": counts["train"],
        "rows_holdout": counts["holdout"],
        "filled_values": dict(filled_counts),
        "aggregation": config.aggregation,
        "filling": filling,
        "duplicates": config.duplicates,
        "negative_targets": config.negative_targets,
        "min_history_periods": int(_min_history(horizon)),
        "all_zero_items": counts["all_zero"],
        "target": {
            "mean": _num(np.mean(kept_y)),
            "std": _num(np.std(kept_y)),
            "min": _num(np.min(kept_y)),
            "max": _num(np.max(kept_y)),
        }
        if len(kept_y)
        else {},
        "source_files": table.files,
    }


def prepare(table: InputTable, config: PrepConfig) -> PrepResult:
    """Validate, align, fill and split. Raises DataValidationError; writes nothing."""
    # read and validate
    _check_config(config)
    check_columns(table, config)
    warnings = list(table.warnings)
    frame = table.frame
    obs = _read_rows(table, config, warnings)
    _check_duplicates(table, obs, config, warnings)
    obs = dataclasses.replace(obs, y=_negative_targets(table, obs, config, warnings))
    roles = _column_roles(table, obs, config, warnings)
    filling = resolve_filling(config.filling, config.target, roles.covariates)

    # the frequency grid, the horizon limits, the series too short to keep
    per = _align(frame, obs, roles.covariates, config, warnings)
    _check_horizon(config, per.periods)
    key_table = frame[config.keys].iloc[per.rows[per.first_idx]].reset_index(drop=True)
    labels_all = period_labels(per.anchor + np.arange(per.periods) * per.multiple, config.frequency)
    label_text = format_timestamps(labels_all)
    drop, dropped_items = _short_series(per, key_table, label_text, config, warnings)
    grid = _build_grid(per, drop)

    # fill, split
    g_y, target_filled = _fill_target(per, grid, filling[config.target])
    g_cov, cov_filled = _fill_covariates(frame, per, grid, roles.covariates, filling)
    in_holdout = _holdout_mask(grid, config.horizon)
    valid = ~np.isnan(g_y)

    # the output columns and the profile
    columns, per_series, train_columns = _output_columns(
        frame, per, grid, key_table, labels_all, g_y, g_cov, roles, config
    )
    counts = {
        "train": int((~in_holdout & valid).sum()),
        "holdout": int((in_holdout & valid).sum()),
        "all_zero": _all_zero_items(per, drop, key_table, config, warnings),
    }
    profile = _profile(
        table,
        config,
        roles,
        train_columns,
        per,
        grid,
        label_text,
        g_y[valid],
        counts,
        {config.target: target_filled, **cov_filled},
        filling,
        dropped_items,
        warnings,
    )
    return PrepResult(
        columns=columns,
        in_holdout=in_holdout,
        valid=valid,
        series=grid.g_series,
        per_series=per_series,
        profile=profile,
        config=config,
    )


def _check_config(config: PrepConfig) -> None:
    try:
        contracts.split_frequency(config.frequency)
    except ValueError as error:
        raise DataValidationError(f"ForecastFrequency ({param('ForecastFrequency')}): {error}") from None
    if int(config.horizon) < 1:
        raise DataValidationError(
            f"ForecastHorizon {config.horizon} ({param('ForecastHorizon')}): must be a whole "
            "number of periods, at least 1."
        )
    if config.aggregation not in AGGREGATIONS:
        raise DataValidationError(f"--aggregation {config.aggregation!r}: use one of {AGGREGATIONS}.")
    if config.duplicates not in DUPLICATE_POLICIES:
        raise DataValidationError(f"--duplicates {config.duplicates!r}: use one of {DUPLICATE_POLICIES}.")
    if config.negative_targets not in NEGATIVE_POLICIES:
        raise DataValidationError(f"--negative-targets {config.negative_targets!r}: use one of {NEGATIVE_POLICIES}.")


def _aggregate(codes, steps, y, rows, cov_values, aggregation):
    """Combine rows of one series that fall into the same period (already sorted)."""
    new_group = np.r_[True, (codes[1:] != codes[:-1]) | (steps[1:] != steps[:-1])]
    group = np.cumsum(new_group) - 1
    how = {"avg": "mean"}.get(aggregation, aggregation)
    y_agg = getattr(pd.Series(y).groupby(group), how)().to_numpy()
    first = np.flatnonzero(new_group)
    covs = {c: pd.Series(v).groupby(group).mean().to_numpy() for c, v in cov_values.items()}
    return codes[first], steps[first], y_agg, rows[first], covs


def _series_name(key_table: pd.DataFrame, s: int, keys: List[str]) -> str:
    values = [str(key_table.at[s, k]) for k in keys]
    return (
        values[0]
        if len(values) == 1
        else values[0] + " (" + ", ".join(f"{k}={v}" for k, v in zip(keys[1:], values[1:])) + ")"
    )


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _num(value) -> Optional[float]:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


# --------------------------------------------------------------------------------- writing
def csv_cell_texts(values: np.ndarray) -> np.ndarray:
    """CSV text per value (object array), as pandas writes it: repr floats, empty for missing,
    minimal quoting. Each distinct value is formatted once (factorize): cheap for millions of rows."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return format_timestamps(values)
    codes, table = csv_cell_table(values)
    return table[codes]


def csv_cell_table(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(codes, texts): texts[codes] is csv_cell_texts(values); the distinct texts let a caller
    measure each one once (PrepareBatchInput's file sizes). The last text is "" (missing, code -1)."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        codes, uniques = pd.factorize(format_timestamps(values))
        return codes, np.array([*uniques.tolist(), ""], dtype=object)
    codes, uniques = pd.factorize(values)
    kind = values.dtype.kind
    if kind == "f":
        texts = [repr(float(u)) for u in uniques.tolist()]
    elif kind in "iub":
        texts = [str(u) for u in uniques.tolist()]
    else:
        texts = [_quote(str(u)) for u in uniques.tolist()]
    return codes, np.array(texts + [""], dtype=object)


def _quote(text: str) -> str:
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _lines(columns: Sequence[np.ndarray]) -> List[str]:
    return list(map(",".join, zip(*[c.tolist() for c in columns])))


def _write_lines(path: Path, header: str, lines) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\n")
        if len(lines):
            handle.write("\n".join(lines if isinstance(lines, list) else lines.tolist()))
            handle.write("\n")


def write_csv(path: Path, names: Sequence[str], cells: Sequence[np.ndarray], rows: Optional[np.ndarray] = None) -> None:
    """Write a header plus the given rows (positions; all when None) of per-column cell texts."""
    columns = [c if rows is None else c[rows] for c in cells]
    _write_lines(path, ",".join(_quote(str(n)) for n in names), _lines(columns))


def write_frame_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """A DataFrame as CSV without index, the fast way (same text as DataFrame.to_csv for plain types)."""
    write_csv(Path(path), list(frame.columns), [csv_cell_texts(frame[c].to_numpy()) for c in frame.columns])


WRITE_CHUNK_ROWS = 500_000  # rows formatted at a time: ~0.2 GB of cell texts, whatever the input size


def _chunk_bounds(series: np.ndarray, chunk_rows: int) -> List[Tuple[int, int]]:
    """[begin, end) row ranges of about chunk_rows rows that never split a series."""
    n = len(series)
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    bounds, begin = [], 0
    while begin < n:
        target = begin + max(1, chunk_rows)
        if target >= n:
            end = n
        else:  # the first series start at or after the target (whole series per chunk)
            at = int(np.searchsorted(starts, target))
            end = int(starts[at]) if at < len(starts) else n
        bounds.append((begin, end))
        begin = end
    return bounds


class _BacktestFiles:
    """Backtest files written as lines arrive: whole series per file, each file at most `budget`
    bytes (processing.sharding.group_series' greedy rule, applied as the series stream by)."""

    def __init__(self, folder: Path, header: str, budget: int):
        self.folder, self.header, self.budget = folder, header, budget
        self.header_bytes = len(header.encode("utf-8")) + 1
        self.handle, self.files, self.size, self.count, self.oversized = None, 0, 0, 0, 0

    def _open(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle = open(self.folder / f"part-{self.files:05d}.csv", "w", encoding="utf-8", newline="")
        self.handle.write(self.header + "\n")
        self.files += 1
        self.size, self.count = self.header_bytes, 0

    def add(self, lines: Sequence[str], series_of_line: np.ndarray) -> None:
        from processing.sharding import line_bytes, series_sizes

        starts, sizes = series_sizes(line_bytes(lines), series_of_line)
        self.oversized += int((sizes + len(self.header) + 1 > self.budget).sum())
        bounds = np.r_[starts, len(lines)]
        for k, nbytes in enumerate(sizes.tolist()):
            if self.handle is None or (self.count > 0 and self.size + nbytes > self.budget):
                self._open()
            self.handle.write("\n".join(lines[bounds[k] : bounds[k + 1]]) + "\n")
            self.size += nbytes
            self.count += 1

    def close(self) -> int:
        if self.handle is None:
            self._open()  # no rows: one file with the header, as before
        self.handle.close()
        return self.files


def write_outputs(
    result: PrepResult, output_dir: str | os.PathLike, chunk_rows: int = WRITE_CHUNK_ROWS
) -> Dict[str, Path]:
    """Write train/holdout/backtest/profile into a temp sibling, then move each folder into place.

    Rows are formatted chunk_rows at a time (whole series per chunk), so memory stays flat
    however large the input: formatting all 27M rows of 25,000 daily series at once took ~8 GB."""
    config = result.config
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=output_dir))
    names = [contracts.PREP_TRAIN, contracts.PREP_HOLDOUT, contracts.PREP_BACKTEST, contracts.PREP_PROFILE]
    try:
        for name in names:
            (staging / name).mkdir()
        columns = list(result.columns)
        per_series = {
            name: csv_cell_texts(result.per_series[name])  # format once per series, not per row
            for name in columns
            if name in result.per_series
        }
        header = ",".join(_quote(str(n)) for n in columns)
        backtest = _BacktestFiles(staging / contracts.PREP_BACKTEST, header, config.backtest_max_bytes)
        holdout_mask = result.in_holdout & result.valid
        backtest_mask = result.backtest_mask
        with (
            open(staging / contracts.PREP_TRAIN / contracts.TRAIN_FILE, "w", encoding="utf-8", newline="") as train,
            open(
                staging / contracts.PREP_HOLDOUT / contracts.HOLDOUT_FILE, "w", encoding="utf-8", newline=""
            ) as holdout,
        ):
            train.write(header + "\n")
            holdout.write(",".join(_quote(str(n)) for n in result.holdout_columns) + "\n")
            for begin, end in _chunk_bounds(result.series, chunk_rows):
                series = result.series[begin:end]
                cells = {
                    name: per_series[name][series]
                    if name in per_series
                    else csv_cell_texts(result.columns[name][begin:end])
                    for name in columns
                }
                rows = np.flatnonzero(holdout_mask[begin:end])
                if len(rows):
                    holdout.write("\n".join(_lines([cells[n][rows] for n in result.holdout_columns])) + "\n")
                # backtest lines = train lines + holdout lines with an empty target: build them once
                in_holdout = result.in_holdout[begin:end]
                cells[config.target] = np.where(in_holdout, "", cells[config.target]).astype(object)
                rows = np.flatnonzero(backtest_mask[begin:end])
                lines = _lines([cells[n][rows] for n in columns])
                train_lines = [lines[i] for i in np.flatnonzero(~in_holdout[rows]).tolist()]
                if train_lines:
                    train.write("\n".join(train_lines) + "\n")
                if lines:
                    backtest.add(lines, series[rows])
        files = backtest.close()
        if backtest.oversized:  # reported with the other warnings (run() logs them, profile.json keeps them)
            result.profile["warnings"].append(
                f"{backtest.oversized} series are each larger than {config.backtest_max_bytes} bytes on their own; "
                "each is a backtest file (one transform request) of its own"
            )
        profile = dict(result.profile, backtest_files=files)
        with open(staging / contracts.PREP_PROFILE / contracts.PROFILE_FILE, "w", encoding="utf-8") as handle:
            json.dump(profile, handle, indent=2, default=str)
        for name in names:
            _replace_dir(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: output_dir / name for name in names}


_replace_dir = atomic.replace_directory


def run(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PrepConfig,
    log: Callable[[str], None] = logger.info,
) -> Dict[str, Any]:
    """Read, prepare, write; returns the profile. Nothing is written when validation fails."""
    table = read_input(input_path, config)
    log(f"read {len(table.frame)} rows from {len(table.files)} file(s)")
    result = prepare(table, config)
    write_outputs(result, output_dir)
    profile = result.profile
    log(
        f"prepared {profile['items']} items x {profile['periods']} periods ({profile['start']} to {profile['end']}): "
        f"train {profile['rows_train']} rows, holdout {profile['rows_holdout']} rows -> {output_dir}"
    )
    for warning in profile["warnings"]:
        log(f"warning: {warning}")
    return profile
