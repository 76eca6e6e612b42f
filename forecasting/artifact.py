"""The fitted model: artifact directory (model.joblib + metadata.json + leaderboard.csv) and prediction.

Prediction input is a context in the user's columns: each item's history plus its future rows
(empty target) carrying the known covariates. Output is Autopilot's batch layout: item id,
grouping columns, timestamp, one column per quantile, then `mean`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import joblib
import numpy as np
import pandas as pd

from processing import tables
from processing.atomic import replace_directory, staged_file, usual_permissions
from processing.kernel.contracts import MEAN_COLUMN

from .calendar import UnseenHolidays
from .config import EngineConfig
from .counts import LOW_COUNT_MEAN, MEDIAN_MIN_UNITS, CountBand, count_series
from .data import ColumnRoles, Panel, build_panel, static_frame, to_long_frame
from .ensemble import combine
from .models.base import TimeBudgetExceeded
from .models.lightgbm_global import import_lightgbm

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
LEADERBOARD_FILE = "leaderboard.csv"
FORMAT_VERSION = 1


class ForecastModel:
    """Weighted ensemble of fitted candidates; weights per output (quantile or mean)."""

    def __init__(
        self,
        config: EngineConfig,
        roles: ColumnRoles,
        static: pd.DataFrame,
        candidates: dict,
        weights: dict,
        metadata: Optional[dict] = None,
        interval_factors: Optional[np.ndarray] = None,
        unseen_holidays: Optional[UnseenHolidays] = None,
        count_band: Optional[CountBand] = None,
    ):
        self.config = config
        self.roles = roles
        self.static = static  # training-time static attributes by series (fallback)
        self.candidates = candidates  # name -> fitted Candidate
        self.weights = weights  # name -> array (n_quantiles + 1,)
        self.metadata = metadata or {}
        self.interval_factors = (
            np.ones(len(config.quantiles)) if interval_factors is None else np.asarray(interval_factors, float)
        )
        # the training history's holidays: forecast periods near ones it never saw get a wider band
        self.unseen_holidays = unseen_holidays
        # low-count integer series get the count distribution the backtests chose (None: none)
        self.count_band = count_band

    # --- prediction ---------------------------------------------------------------------
    def predict(
        self, context: pd.DataFrame, source: str = "prediction input", deadline: Optional[float] = None
    ) -> pd.DataFrame:
        """`deadline` (a time.monotonic() value, None: no limit): past it, TimeBudgetExceeded, so a
        real-time request too large for its invocation timeout stops instead of computing on."""
        config = self.config
        long = to_long_frame(context, config, self.roles, source, training=False)
        ids = static_frame(context, config, ColumnRoles([], [c for c in self.roles.static if c in context.columns], []))
        history, future = self._split(long, ids, source, deadline)
        values = self.predict_arrays(history, future, deadline)
        return self._to_frame(values, future, ids, deadline)

    def predict_arrays(self, history: Panel, future: Panel, deadline: Optional[float] = None) -> np.ndarray:
        members = {
            name: self.candidates[name].predict(history, future, deadline=_checked(deadline))
            for name, w in self.weights.items()
            if np.any(w > 0)
        }
        holidays = getattr(self, "unseen_holidays", None)  # models saved before it existed: none
        counts = getattr(self, "count_band", None)
        return combine(
            members,
            self.weights,
            self.config.quantile_levels,
            self.interval_factors,
            bool(self.metadata.get("non_negative", False)),
            None if holidays is None else holidays.spread_rows(future.ds, future.n_series, future.uids),
            counts,
            None if counts is None else count_series(history, self.config.season_length),
        )

    def predict_file(self, in_path, out_path) -> Path:
        frame = self.predict(read_request(in_path, self.config), source=str(in_path))
        with staged_file(out_path) as tmp:
            frame.to_csv(tmp, index=False)
        return Path(out_path)

    def _split(self, long: pd.DataFrame, ids: pd.DataFrame, source: str, deadline: Optional[float] = None):
        """(history, future) panels: each series' rows up to its last known target, then the next H.

        Array operations over all series at once (a per-series pandas loop cost ~13 ms a series:
        5 minutes of a 25,000-series batch); a series with fewer than H future rows goes through
        the per-series path (_split_per_series), which extends it or says what is missing."""
        _checked(deadline)
        H, covariates = self.config.horizon, list(self.roles.covariates)
        uid = long["unique_id"].to_numpy()
        n = len(uid)
        if n == 0:
            return self._split_per_series(long, ids, source, deadline)
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
        lengths = np.diff(np.r_[starts, n])
        rows = np.arange(n)
        last = np.maximum.reduceat(np.where(long["y"].notna().to_numpy(), rows, -1), starts)
        no_history = np.flatnonzero(last < starts)
        if len(no_history):
            raise ValueError(
                f"{source}: item {uid[starts[no_history[0]]]!r} has no history (every target is "
                "empty); the context must contain past values of the target"
            )
        if np.any(starts + lengths - (last + 1) < H):
            return self._split_per_series(long, ids, source, deadline)
        last_of_row = np.repeat(last, lengths)
        in_history = rows <= last_of_row
        in_future = (rows > last_of_row) & (rows <= last_of_row + H)
        if covariates:
            empty = long.loc[in_future, covariates].isna().to_numpy()
            if empty.any():
                first = int(np.flatnonzero(empty.any(axis=1))[0])
                item = uid[np.flatnonzero(in_future)[first]]
                in_item = uid[in_future] == item
                col = covariates[int(np.flatnonzero(empty[in_item].any(axis=0))[0])]
                raise ValueError(
                    f"{source}: item {item!r} has empty future values of covariate {col!r}; "
                    "the future rows must carry every related time series"
                )
        static = self._static_for(ids)
        history = build_panel(long[in_history].reset_index(drop=True), covariates, static)
        future = build_panel(long[in_future].reset_index(drop=True), covariates, static)
        return history, future

    def _split_per_series(self, long: pd.DataFrame, ids: pd.DataFrame, source: str, deadline: Optional[float] = None):
        config, H = self.config, self.config.horizon
        known = long["y"].notna().to_numpy()
        uid = long["unique_id"].to_numpy()
        hist_parts, fut_parts = [], []
        offset = pd.tseries.frequencies.to_offset(config.pandas_frequency)
        for u, part in long.groupby("unique_id", sort=False):
            _checked(deadline)
            k = part["y"].notna().to_numpy()
            if not k.any():
                raise ValueError(
                    f"{source}: item {u!r} has no history (every target is empty); "
                    "the context must contain past values of the target"
                )
            last = int(np.flatnonzero(k)[-1])
            hist = part.iloc[: last + 1]
            fut = part.iloc[last + 1 : last + 1 + H]
            if len(fut) < H:
                if self.roles.covariates and not all(
                    "futurefill" in config.filling.get(c, {}) for c in self.roles.covariates
                ):
                    raise ValueError(
                        f"{source}: item {u!r} has {len(fut)} future rows but the forecast horizon is {H}; "
                        f"add rows for the next {H} periods with an empty target and the values of "
                        f"{self.roles.covariates} (or set a futurefill rule for them)"
                    )
                start = fut["ds"].iloc[-1] if len(fut) else hist["ds"].iloc[-1]
                extra = pd.date_range(start, periods=H - len(fut) + 1, freq=offset)[1:]
                add = pd.DataFrame({"unique_id": u, "ds": extra, "y": np.nan})
                for c in self.roles.covariates:
                    rule = config.filling[c]
                    add[c] = 0.0 if rule["futurefill"] == "zero" else float(rule.get("futurefill_value", 0.0) or 0.0)
                fut = pd.concat([fut, add], ignore_index=True)
            if fut[self.roles.covariates].isna().any().any() if self.roles.covariates else False:
                col = fut[self.roles.covariates].columns[fut[self.roles.covariates].isna().any()][0]
                raise ValueError(
                    f"{source}: item {u!r} has empty future values of covariate {col!r}; "
                    "the future rows must carry every related time series"
                )
            hist_parts.append(hist)
            fut_parts.append(fut)
        del known, uid
        static = self._static_for(ids)
        history = build_panel(pd.concat(hist_parts, ignore_index=True), self.roles.covariates, static)
        future = build_panel(pd.concat(fut_parts, ignore_index=True), self.roles.covariates, static)
        return history, future

    def _static_for(self, ids: pd.DataFrame) -> pd.DataFrame:
        columns = list(self.roles.static)
        out = pd.DataFrame(index=ids.index)
        for c in columns:
            if c in ids.columns:
                out[c] = ids[c].astype(str)
            else:
                out[c] = self.static[c].reindex(ids.index).astype(str) if c in self.static.columns else "nan"
        return out

    def _to_frame(
        self, values: np.ndarray, future: Panel, ids: pd.DataFrame, deadline: Optional[float] = None
    ) -> pd.DataFrame:
        config = self.config
        _checked(deadline)
        lengths = np.asarray(future.lengths, dtype=int)
        if not len(lengths):
            raise ValueError("no series to forecast")
        flat = values[np.arange(values.shape[1])[None, :] < lengths[:, None]]  # series-major rows
        part = {
            column: np.repeat(ids.loc[list(future.uids), column].to_numpy(), lengths)
            for column in [config.item_id_column, *config.grouping_columns]
        }
        part[config.timestamp_column] = future.ds[future.indptr[0] : future.indptr[-1]]
        for j, q in enumerate(config.quantiles):
            part[q] = flat[:, j]
        part[MEAN_COLUMN] = flat[:, -1]
        frame = pd.DataFrame(part)
        ts = pd.to_datetime(frame[config.timestamp_column])
        fmt = "%Y-%m-%d" if (ts == ts.dt.normalize()).all() else "%Y-%m-%d %H:%M:%S"
        frame[config.timestamp_column] = ts.dt.strftime(fmt)
        return frame

    # --- persistence --------------------------------------------------------------------
    def save(self, model_dir, leaderboard: Optional[pd.DataFrame] = None) -> Path:
        """Write atomically: a temp sibling folder renamed into place."""
        model_dir = Path(model_dir)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}."))
        usual_permissions(tmp, directory=True)  # the model folder reads like the user's other folders
        try:
            joblib.dump(self, tmp / MODEL_FILE, compress=3)
            meta = {
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "covariates": self.roles.covariates,
                "static": self.roles.static,
                "dropped_columns": self.roles.dropped,
                "weights": {k: [float(x) for x in v] for k, v in self.weights.items()},
                "interval_factors": np.asarray(self.interval_factors, float).tolist(),
                "unseen_holiday_spread": _spread_list(getattr(self, "unseen_holidays", None)),
                "count_band": _count_band_dict(getattr(self, "count_band", None)),
                "outputs": list(self.config.quantiles) + [MEAN_COLUMN],
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **self.metadata,
            }
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
            if leaderboard is not None:
                leaderboard.to_csv(tmp / LEADERBOARD_FILE, index=False)
            replace_directory(tmp, model_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return model_dir


def _spread_list(holidays: Optional[UnseenHolidays]) -> Optional[list]:
    """metadata.json's `unseen_holiday_spread`: per quantile, or None (no calendar, nothing learnt)."""
    return None if holidays is None else np.asarray(holidays.spread, float).tolist()


def _count_band_dict(band: Optional[CountBand]) -> Optional[dict]:
    """metadata.json's `count_band`: the low-count series' dispersions and their backtest gain, or None."""
    if band is None:
        return None
    return {
        "median_dispersion": band.median_dispersion,
        "mean_dispersion": band.mean_dispersion,
        "backtest_gain": round(band.gain, 4),
        "low_count_mean": LOW_COUNT_MEAN,
        "median_min_units": MEDIAN_MIN_UNITS,
    }


def read_request(path, config: EngineConfig) -> pd.DataFrame:
    """A transform request's file: the frame `read_table` gives (item id and grouping columns
    as text, the target never text), through the project's fast reader
    (processing.tables.read_frame_coded: pyarrow's CSV parser, 2x less CPU than pandas' for a
    5 MB request; reading was 40% of a request's CPU at 25,000 series). One thread: the
    transform runs its requests in parallel worker processes. What pyarrow cannot read the same
    way goes to the project's pandas reader, whose rules and one-line errors it keeps."""
    text = [config.item_id_column, *config.grouping_columns]
    return tables.read_frame_coded(path, text, numeric=[config.target_column], what="data", threads=False)


def _checked(deadline: Optional[float]) -> Optional[float]:
    """`deadline`, once it is known not to have passed (the per-item loops call this)."""
    if deadline is not None and time.monotonic() > deadline:
        raise TimeBudgetExceeded("the prediction ran past its deadline")
    return deadline


def members(model_dir) -> Optional[list]:
    """The artifact's member names from its metadata.json (None when it cannot be read)."""
    try:
        weights = json.loads((Path(model_dir) / METADATA_FILE).read_text()).get("weights")
    except (OSError, ValueError):
        return None
    return list(weights) if isinstance(weights, dict) else None


def needs_lightgbm(model_dir) -> bool:
    """Whether unpickling the artifact meets LightGBM boosters: only then is lightgbm imported
    ahead (import_lightgbm, ~0.3 s of CPU with scipy.sparse), so that an artifact of per-series
    models (NPTS, seasonal naive) loads without it. Unknown members or no metadata: True (the
    import costs time, never correctness)."""
    from .models import CANDIDATES
    from .models.lightgbm_global import LightGBMGlobal

    names = members(model_dir)
    if names is None:
        return True
    return any(name not in CANDIDATES or issubclass(CANDIDATES[name], LightGBMGlobal) for name in names)


def load_model(model_dir) -> ForecastModel:
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{model_dir}: no {MODEL_FILE}; pass the model directory written by forecasting.train (output_dir/model)"
        )
    if needs_lightgbm(model_dir):
        import_lightgbm()  # before unpickling boosters, which would import lightgbm the slow way
    model = joblib.load(path)
    if not isinstance(model, ForecastModel):
        raise ValueError(f"{path} does not hold a forecasting model")
    return model
