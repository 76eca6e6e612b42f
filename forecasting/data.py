"""Data entering the engine: user columns mapped ONCE to long sorted arrays, then a Panel on them.

Training builds the panel on the arrays (long_columns -> panel_from_columns) with no long frame in
between: at 25,000 daily series each column is 0.22 GB and the frame's copies set the job's peak.
Prediction input still goes through the frame (to_long_frame), which the split into history and
future works on.

Inside the engine a series is identified by `unique_id` (item id plus grouping values), its
time by `ds`, its target by `y`. `Panel` keeps every series in flat numpy arrays with offsets
(statsforecast's GroupedArray idea) so hot paths never loop over pandas groups.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from processing import tables
from processing.data_prep import MAX_ABS_VALUE, apply_fill
from processing.kernel import contracts

from .config import EngineConfig

UID_SEP = "|"


@dataclasses.dataclass
class ColumnRoles:
    """Autopilot's column rules, decided on the training data and reused at prediction."""

    covariates: list  # numeric, varying in time: future values arrive with the input
    static: list  # constant per item: metadata (treated as categories)
    dropped: list  # columns the engine cannot use (non-numeric and time-varying)


@dataclasses.dataclass
class Panel:
    """Series in flat arrays: rows of series i are indptr[i]:indptr[i+1], sorted by time."""

    uids: np.ndarray
    indptr: np.ndarray
    ds: np.ndarray  # datetime64[ns]
    y: np.ndarray  # float64 (NaN where unknown: the future)
    X: np.ndarray  # (rows, n_covariates) float64
    covariate_names: list
    static: pd.DataFrame  # index = uids, one column per static attribute (strings)

    @property
    def n_series(self) -> int:
        return len(self.uids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def series_y(self, i: int) -> np.ndarray:
        return self.y[self.indptr[i] : self.indptr[i + 1]]

    def take_rows(self, rows: np.ndarray, indptr: np.ndarray, uids: Optional[np.ndarray] = None) -> "Panel":
        uids = self.uids if uids is None else uids
        return Panel(
            uids,
            indptr,
            self.ds[rows],
            self.y[rows],
            self.X[rows],
            self.covariate_names,
            self.static.loc[uids] if len(self.static.columns) else self.static.reindex(uids),
        )

    def split_tail(self, n_tail: int, keep: int) -> tuple["Panel", "Panel"]:
        """Cut the last `n_tail` rows of each series off; return (head, the first `keep` cut rows).

        Series too short to keep at least 2 rows of history are dropped from both parts.
        """
        lengths = self.lengths
        ok = lengths - n_tail >= 2
        heads, tails, hl, tl = [], [], [0], [0]
        for i in np.flatnonzero(ok):
            start, end = self.indptr[i], self.indptr[i + 1]
            cut = end - n_tail
            heads.append(np.arange(start, cut))
            tails.append(np.arange(cut, min(cut + keep, end)))
            hl.append(hl[-1] + cut - start)
            tl.append(tl[-1] + len(tails[-1]))
        uids = self.uids[ok]
        empty = np.array([], dtype=int)
        head = self.take_rows(np.concatenate(heads) if heads else empty, np.array(hl), uids)
        tail = self.take_rows(np.concatenate(tails) if tails else empty, np.array(tl), uids)
        return head, tail

    def subset(self, index: Sequence[int]) -> "Panel":
        chosen = np.asarray(index, dtype=int)
        rows = [np.arange(self.indptr[i], self.indptr[i + 1]) for i in chosen]
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(int)
        return self.take_rows(np.concatenate(rows) if rows else np.array([], dtype=int), indptr, self.uids[chosen])


def read_table(path, config: Optional[EngineConfig] = None) -> pd.DataFrame:
    """CSV or parquet (a file or a folder of them; .gz fine) through the project's one reader
    (processing.tables): the item id and grouping columns are read as text, so '007' stays '007'.
    Read errors are one line naming the file (processing.tables.TableError, a ValueError)."""
    text = [config.item_id_column, *config.grouping_columns] if config is not None else []
    # text columns as categories: one Python string per distinct value, not per row (the 27M rows
    # of 25,000 daily series), and the parser works in chunks instead of holding the whole file
    numeric = [config.target_column] if config is not None else []
    return tables.read_frame(path, text, suffixes=tables.DATA_SUFFIXES, what="data", categorical=True, numeric=numeric)


def _check_columns(df: pd.DataFrame, config: EngineConfig, source: str, need_target: bool = True):
    needed = [config.item_id_column, config.timestamp_column, *config.grouping_columns]
    if need_target:
        needed.append(config.target_column)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing}; found {list(df.columns)}. Check the "
            "TimeSeriesConfig attribute names (item id, timestamp, target, grouping)."
        )


def infer_roles(df: pd.DataFrame, config: EngineConfig) -> ColumnRoles:
    """Numeric columns varying within an item are covariates; columns constant per item are static."""
    keys = {config.item_id_column, config.timestamp_column, config.target_column, *config.grouping_columns}
    others = [c for c in df.columns if c not in keys]
    codes = pd.factorize(_uid_series(df, config).to_numpy())[0]  # integer keys: grouping by strings costs 10x
    covariates, static, dropped = [], [], []
    for column in others:
        varies = (df.groupby(codes, sort=False)[column].nunique(dropna=False) > 1).any()
        if not varies:
            static.append(column)
        elif pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column]):
            covariates.append(column)
        else:
            dropped.append(column)
    return ColumnRoles(covariates, static, dropped)


def _text(values: pd.Series) -> pd.Series:
    """values.astype(str); a category's texts are made once per category and shared by its rows."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.isna().any():
        texts = np.asarray(values.cat.categories.astype(str), dtype=object)
        return pd.Series(texts[values.cat.codes.to_numpy()], index=values.index, name=values.name)
    return values.astype(str)


def _uid_series(df: pd.DataFrame, config: EngineConfig) -> pd.Series:
    uid = _text(df[config.item_id_column])
    for column in config.grouping_columns:
        uid = uid + UID_SEP + _text(df[column])
    return uid


def _parse_timestamps(values: pd.Series, source: str, column: str) -> pd.Series:
    """Timestamps at their local time: a UTC offset is dropped (PrepareData's rule, docs/data.md)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.isna().any():
        # each distinct text parsed once (1,095 days, not 27M rows); any problem: the row-wise path names the row
        categories = pd.Series(values.cat.categories.astype(str))
        parsed = pd.to_datetime(tables.local_time_texts(categories), errors="coerce")
        if not parsed.isna().any():
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_localize(None)
            return pd.Series(parsed.to_numpy()[values.cat.codes.to_numpy()], index=values.index, name=values.name)
        values = values.astype(object)
    texts = tables.local_time_texts(values)
    parsed = pd.to_datetime(texts, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any() or values.isna().any():
        row, usual = _odd_timestamp(texts, bad)
        what = (
            f"({values.iloc[row]!r}) is not in the format of most rows ({usual}); write every timestamp in one format,"
            if usual
            else f"has an unreadable or empty timestamp ({values.iloc[row]!r}); use"
        )
        raise ValueError(
            f"{source}: column {column!r} row {row + 2} {what} ISO dates such as 2023-12-31 or 2023-12-31 23:00:00"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _odd_timestamp(values: pd.Series, bad: pd.Series) -> tuple[int, Optional[str]]:
    """(first row that is empty or not in the most common format, that format), not just the first
    row pandas failed on: pandas reads all rows in the FIRST row's format, so an odd first row
    made every good row look bad."""
    from pandas.tseries.api import guess_datetime_format

    codes, uniques = pd.factorize(values.astype(str).where(values.notna()))
    formats = np.array([guess_datetime_format(u) for u in uniques] + [None], dtype=object)[codes]
    counts = pd.Series(formats).value_counts()  # None (unreadable, empty) not counted
    usual = counts.index[0] if len(counts) and (formats != counts.index[0]).any() else None
    odd = (formats != usual) if usual else (bad | values.isna()).to_numpy()
    return int(np.flatnonzero(odd)[0]), usual


def _fill(values: np.ndarray, codes: np.ndarray, region: np.ndarray, rule: str, explicit: Optional[str]) -> np.ndarray:
    """Fill the missing values in `region` the way the PrepareData step does (data_prep.apply_fill:
    Autopilot's statistic over each series' 64 most recent observed values); nan/none keeps them empty."""
    if rule in ("nan", "none"):
        return values
    missing = np.isnan(values)
    filled = apply_fill(values, codes, missing, region, rule, explicit if explicit is not None else "0")
    return np.where(np.isnan(filled) & missing & region, 0.0, filled)  # a series with no value at all


def _booleans(values: pd.Series) -> np.ndarray:
    """Where `values` holds True/False (a bool column, or bools among the numbers of an object one)."""
    if pd.api.types.is_bool_dtype(values):
        return values.notna().to_numpy()
    if values.dtype != object:
        return np.zeros(len(values), bool)
    return values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool)


_AGG = contracts.PANDAS_AGGREGATION


def to_long_frame(
    df: pd.DataFrame, config: EngineConfig, roles: ColumnRoles, source: str, training: bool
) -> pd.DataFrame:
    """Map user columns to unique_id/ds/y(+covariates), aggregate duplicates, regularise the grid.

    Missing periods inside a series get the Filling rules (Autopilot defaults: target and
    covariates middlefill zero). Rows with an empty target are kept only for prediction input.
    """
    return long_frame(long_columns(df, config, roles, source, training), roles.covariates)


def long_columns(df: pd.DataFrame, config: EngineConfig, roles: ColumnRoles, source: str, training: bool) -> dict:
    """to_long_frame's content as arrays {unique_id, ds, y, X (rows x covariates, column-major)}.

    The engine builds its panel from these without a frame in between: at 25,000 daily series
    (27M rows) each column is 0.22 GB, and the frame's block copies (boolean row selection,
    consolidation, `frame[covariates].to_numpy()`) each cost one or more copies of all of them.
    Sorted, regular input (PrepareData's output) is neither copied nor re-sorted here."""
    _check_columns(df, config, source, need_target=training or config.target_column in df.columns)
    missing_cov = [c for c in roles.covariates if c not in df.columns]
    if missing_cov:
        raise ValueError(
            f"{source}: covariate column(s) {missing_cov} seen at training are missing; "
            "the inference input must carry every related time series, including future rows"
        )
    uid = _uid_series(df, config).to_numpy()
    ds = _parse_timestamps(df[config.timestamp_column], source, config.timestamp_column).to_numpy()
    y = _target_values(df, config, source)
    X = np.empty((len(df), len(roles.covariates)), order="F")  # the layout frame.to_numpy() gave
    for j, column in enumerate(roles.covariates):
        X[:, j] = _covariate_values(df[column], column, source)
    _check_scale(y, config.target_column, source)
    for j, column in enumerate(roles.covariates):
        _check_scale(X[:, j], column, source)
    columns = {"unique_id": uid, "ds": _period_labels(ds, config), "y": y, "X": X}
    del uid, ds, y, X
    covariates = roles.covariates
    if not _in_key_order(columns["unique_id"], columns["ds"]):
        long = _sorted_frame(long_frame(columns, covariates), config, roles)
        columns = _frame_columns(long, covariates)
    elif not _is_regular(columns["unique_id"], columns["ds"], config.pandas_frequency):
        columns = _frame_columns(_regularise(long_frame(columns, covariates), config), covariates)
    return _fill_columns(columns, config, roles, training)


def long_frame(columns: dict, covariates: Sequence[str]) -> pd.DataFrame:
    """The frame of long_columns' arrays: unique_id, ds, y, then one column per covariate."""
    frame = pd.DataFrame({"unique_id": columns["unique_id"], "ds": columns["ds"], "y": columns["y"]})
    for j, column in enumerate(covariates):
        frame[column] = columns["X"][:, j]
    return frame


def _frame_columns(long: pd.DataFrame, covariates: Sequence[str]) -> dict:
    """long_frame's inverse: the frame's columns as arrays (X a new column-major matrix)."""
    X = np.empty((len(long), len(covariates)), order="F")
    for j, column in enumerate(covariates):
        X[:, j] = long[column].to_numpy(float)
    return {
        "unique_id": long["unique_id"].to_numpy(),
        "ds": long["ds"].to_numpy("datetime64[ns]"),
        "y": long["y"].to_numpy(float),
        "X": X,
    }


def _target_values(df: pd.DataFrame, config: EngineConfig, source: str) -> np.ndarray:
    """The target as float64 (a new array, NaN = unknown); text or booleans are a one-line error."""
    if config.target_column not in df.columns:
        return np.full(len(df), np.nan)
    target = df[config.target_column]
    y = pd.to_numeric(target, errors="coerce")
    bad = (y.isna() & target.notna()).to_numpy()  # text that is not a number (blank text is an empty target)
    if bad.any():
        bad[bad] = (target[bad].astype(str).str.strip() != "").to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: column {config.target_column!r} row {row + 2} is not a number "
            f"({target.iloc[row]!r}); targets must be numeric (empty = unknown)"
        )
    flags = _booleans(target)
    if flags.any():  # pandas reads true as 1: a JSON boolean would become a sale
        row = int(np.flatnonzero(flags)[0])
        raise ValueError(
            f"{source}: column {config.target_column!r} row {row + 2} is a boolean "
            f"({target.iloc[row]!r}), not a number; targets must be numeric (empty = unknown)"
        )
    return y.astype(float).to_numpy()


def _covariate_values(raw: pd.Series, column: str, source: str) -> np.ndarray:
    numbers = pd.to_numeric(raw, errors="coerce")
    text = numbers.isna() & raw.notna()
    text &= (raw.astype(str).str.strip() != "") if text.any() else text  # blanks are empty values
    if text.any():  # else "yes" became an empty value, filled as 0 or reported as missing
        row = int(np.flatnonzero(text.to_numpy())[0])
        raise ValueError(
            f"{source}: column {column!r} row {row + 2} is not a number ({raw.iloc[row]!r}); "
            "related time series must be numeric (true/false count as 1/0; a blank cell takes the fill rule)"
        )
    return numbers.astype(float).to_numpy()


def _check_scale(values: np.ndarray, user: str, source: str) -> None:
    """Values beyond +-MAX_ABS_VALUE are an error (two boolean masks, no float temporary)."""
    with np.errstate(invalid="ignore"):
        huge = (values > MAX_ABS_VALUE) | (values < -MAX_ABS_VALUE)
    if huge.any():
        where = np.flatnonzero(huge)
        raise ValueError(
            f"{source}: column {user!r} has {len(where)} values beyond +-{MAX_ABS_VALUE:.0e} "
            f"(first: row {int(where[0]) + 2}, {float(values[where[0]])!r}), a scale at which "
            "the forecasting arithmetic overflows; correct or rescale them"
        )


def _period_labels(ds: np.ndarray, config: EngineConfig) -> np.ndarray:
    """Each timestamp's period label: floored to the step (D/H/min; unchanged when already on
    it, no copy), else the period's start (weekly: its Sunday, W-SUN)."""
    if config.frequency_unit in ("D", "H", "min"):
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(config.pandas_frequency)).value
        ticks = ds.view("i8")
        if not (ticks % step).any():  # NaT is never here: _parse_timestamps rejects it
            return ds
        return pd.Series(ds).dt.floor(config.pandas_frequency).to_numpy()
    period = config.pandas_frequency.replace("MS", "M").replace("YS", "Y")  # period aliases
    labels = pd.Series(ds).dt.to_period(period).dt.start_time
    if config.frequency_unit == "W":
        labels = labels + pd.Timedelta(days=6)  # W-SUN labels weeks by their Sunday
    return labels.to_numpy()


def _in_key_order(uid: np.ndarray, ds: np.ndarray) -> bool:
    """In (unique_id, ds) order without duplicates (PrepareData's output)."""
    if len(uid) <= 1:
        return False  # the frame path handles the trivial cases as before
    same = uid[1:] == uid[:-1]
    return bool(np.all((uid[1:] > uid[:-1]) | (same & (ds[1:] > ds[:-1]))))


def _is_regular(uid: np.ndarray, ds: np.ndarray, freq: str) -> bool:
    """Every series' rows one step apart (calendar steps, months or years, never count as fixed)."""
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).to_timedelta64()
    except ValueError:  # calendar offsets (months, years) have no fixed length
        return False
    same = uid[1:] == uid[:-1]
    return bool(np.all(np.diff(ds)[same] == step))


def _sorted_frame(long: pd.DataFrame, config: EngineConfig, roles: ColumnRoles) -> pd.DataFrame:
    """Duplicates of a (series, period) aggregated, rows sorted, the grid regularised."""
    if long.duplicated(["unique_id", "ds"]).any():
        how: dict[str, Any] = {"y": _AGG[config.aggregation.get(config.target_column, "sum")]}
        for column in roles.covariates:
            how[column] = _AGG[config.aggregation.get(column, "avg")]
        grouped = long.groupby(["unique_id", "ds"], sort=False)
        aggregated = grouped.agg(how)
        # a period whose rows all lack a target stays empty (future rows; or, in training, not yet
        # history): summing NaNs would make it a sale of 0
        aggregated["y"] = np.where(grouped["y"].count().to_numpy() == 0, np.nan, aggregated["y"].to_numpy())
        long = aggregated.reset_index()
    long = long.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    uid, ds = long["unique_id"].to_numpy(), long["ds"].to_numpy()
    return long if _is_regular(uid, ds, config.pandas_frequency) else _regularise(long, config)


def _regularise(long: pd.DataFrame, config: EngineConfig) -> pd.DataFrame:
    """Insert missing periods (one regular grid per series) into sorted rows; the new ones are empty."""
    freq = config.pandas_frequency
    uid = long["unique_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    ends = np.r_[starts[1:], len(long)]
    pieces = []
    for s, e in zip(starts, ends):
        part = long.iloc[s:e]
        grid = pd.date_range(part["ds"].iloc[0], part["ds"].iloc[-1], freq=freq)
        if len(grid) != len(part) or not np.array_equal(grid.values, part["ds"].values):
            part = part.set_index("ds").reindex(grid.union(pd.DatetimeIndex(part["ds"])))
            part.index.name = "ds"
            part = part.reset_index()
            part["unique_id"] = uid[s]
            part = part[long.columns]
        pieces.append(part)
    return pd.concat(pieces, ignore_index=True)


def _series_starts(uid: np.ndarray) -> np.ndarray:
    """First row of each series (rows grouped by series)."""
    return np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]]) if len(uid) else np.array([], dtype=int)


def _series_codes(uid: np.ndarray) -> np.ndarray:
    """Series number of each row, in order of appearance (pd.factorize's codes for grouped rows)."""
    starts = _series_starts(uid)
    return np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(uid)]))


def _apply_filling(long: pd.DataFrame, config: EngineConfig, roles: ColumnRoles, training: bool) -> pd.DataFrame:
    """_fill_columns on a long frame (grouped by series, sorted by time); a new frame."""
    columns = _frame_columns(long, roles.covariates)
    return long_frame(_fill_columns(columns, config, roles, training), roles.covariates)


def _fill_columns(columns: dict, config: EngineConfig, roles: ColumnRoles, training: bool) -> dict:
    """Autopilot's Filling: middlefill inside the history (default zero), futurefill after it.

    Training data: trailing empty targets are not history and are dropped. Prediction input:
    rows after each series' last known target are the future and keep an empty target.
    Rows are grouped by series (sorted). The target array is replaced, never written into (it
    may be a view of a frame); X is written into (long_columns and _frame_columns make it).
    """
    columns = dict(columns)
    uid = columns["unique_id"]
    known = ~np.isnan(columns["y"])
    if known.all():
        in_history = np.ones(len(uid), bool)
    else:
        starts = _series_starts(uid)
        position = np.where(known, np.arange(len(uid)), -1)
        last_known = np.maximum.reduceat(position, starts) if len(starts) else position[:0]
        del position
        in_history = np.arange(len(uid)) <= np.repeat(last_known, np.diff(np.r_[starts, len(uid)]))
        if training and not in_history.all():
            columns = {
                "unique_id": uid[in_history],
                "ds": columns["ds"][in_history],
                "y": columns["y"][in_history],
                "X": columns["X"][in_history],
            }
            columns["X"] = np.asfortranarray(columns["X"])  # the frame path's layout
            in_history = np.ones(len(columns["y"]), bool)
    codes = None
    fills = [("y", config.target_column, None)] + [("X", c, j) for j, c in enumerate(roles.covariates)]
    for internal, user, j in fills:
        rule = config.filling.get(user, {})
        values = columns[internal] if j is None else columns[internal][:, j]
        missing = np.isnan(values)
        if not missing.any():
            continue
        codes = _series_codes(columns["unique_id"]) if codes is None else codes
        filled = values
        mid = missing & in_history
        if mid.any():
            filled = _fill(filled, codes, mid, rule.get("middlefill", "zero"), rule.get("middlefill_value"))
        fut = missing & ~in_history
        if internal != "y" and fut.any() and "futurefill" in rule:
            filled = _fill(filled, codes, fut, rule["futurefill"], rule.get("futurefill_value"))
        if filled is values:
            continue
        if j is None:
            columns["y"] = filled
        else:
            columns["X"][:, j] = filled  # X is always this module's own matrix
    return columns


def build_panel(long: pd.DataFrame, covariates: list, static: pd.DataFrame) -> Panel:
    """The panel of a long frame (to_long_frame's columns, grouped by series, sorted by time)."""
    return panel_from_columns(_frame_columns(long, covariates), covariates, static)


def panel_from_columns(columns: dict, covariates: list, static: pd.DataFrame) -> Panel:
    """The panel over long_columns' arrays (shared, not copied)."""
    uid = columns["unique_id"]
    starts = _series_starts(uid)
    indptr = np.r_[starts, len(uid)].astype(int)
    uids = uid[starts] if len(uid) else np.array([], dtype=object)
    static = static.reindex(uids) if len(static.columns) else pd.DataFrame(index=uids)
    return Panel(
        uids.astype(object),
        indptr,
        np.asarray(columns["ds"], dtype="datetime64[ns]"),
        np.asarray(columns["y"], dtype=float),
        columns["X"] if len(covariates) else np.zeros((len(uid), 0)),
        list(covariates),
        static,
    )


def static_frame(df: pd.DataFrame, config: EngineConfig, roles: ColumnRoles) -> pd.DataFrame:
    """One row per series: the static attributes as strings, plus the user's id/grouping values."""
    uid = _uid_series(df, config)
    keep = [config.item_id_column, *config.grouping_columns, *roles.static]
    frame = df[keep].copy()
    frame.index = uid.to_numpy()
    frame = frame[~frame.index.duplicated(keep="first")]
    for column in [config.item_id_column, *config.grouping_columns]:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):  # read as categories: plain text again
            frame[column] = frame[column].astype(object)
    for column in roles.static:
        frame[column] = frame[column].astype(str)
    return frame


def check_training_panel(panel: Panel, config: EngineConfig, source: str):
    if panel.n_series == 0:
        raise ValueError(f"{source}: no rows with a target; the training data must contain history")
    y = panel.y
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        series = panel.uids[np.searchsorted(panel.indptr, bad, side="right") - 1]
        raise ValueError(
            f"{source}: series {series!r} has an empty target at {pd.Timestamp(panel.ds[bad])} "
            "after filling; set Transformations.Filling for the target (e.g. middlefill zero)"
        )
    if not np.isfinite(panel.X).all():
        col = int(np.flatnonzero(~np.isfinite(panel.X).all(axis=0))[0])
        raise ValueError(
            f"{source}: covariate {panel.covariate_names[col]!r} has empty values in the history; "
            "fill them or set Transformations.Filling for it"
        )
    short = panel.lengths < 2
    if short.all():
        raise ValueError(
            f"{source}: every series has fewer than 2 observations; "
            f"forecasting {config.horizon} periods ahead needs history"
        )
