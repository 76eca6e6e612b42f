"""The real-time forecast API: a Lambda-style handler over the deployed endpoint and real data.

Request (API Gateway proxy event {"body": "<json>"}, or the JSON object itself):

    {"item_id": "electronics_laptop_North",    required; string (an integer is read as its text)
     "horizon": 7,                             optional; 1..the model's horizon (default: all of it)
     "quantiles": ["p10", "p50", "p90"],       optional; a subset of the model's quantiles
     "grouping": {"region": "North"},          optional; needed only when item ids repeat across groups
     "covariates": {"promotion": [0, 1, ...]}} optional; known future values, one per period asked for
                                               (or per period of the model's horizon); finite, within ±1e15

Response 200:

    {"item_id": ..., "horizon": 7, "frequency": "D", "quantiles": ["p10", "p50", "p90"],
     "forecast": [{"timestamp": "2024-01-01", "p10": ..., "p50": ..., "p90": ..., "mean": ...}, ...],
     "model_package_arn": "arn:aws:sagemaker:...:model-package/...", "endpoint_name": ...,
     "generated_at": "2024-...Z", "history": {"source": ..., "points": ..., "last_timestamp": ...},
     "future_covariates": {"columns": [...], "from_request": [...], "from_calendar": {"day_of_week": ...},
                           "holiday_columns": ["is_holiday"],
                           "from_holiday_calendar": {"is_holiday": {"country": "US", "dates": [...]}},
                           "assumed_zero": [...], "note": "..."},
     "cache": "hit" | "miss"}

Errors: 400 malformed request (the message names the field), 404 unknown item, 405 another
method, 408 a body slower than the read timeout, 413 a body over MAX_REQUEST_BYTES or an
endpoint request over SageMaker's 6 MB real-time limit; the endpoint's own 400/413/422 (the
input, or too large to forecast in time) passed on; 429 SageMaker throttles; 502 the endpoint
failed or is not running, 503 no prepared data found, 504 the endpoint timed out (see
`endpoint_error`); always {"error": message}, never a stack trace; an error about one field (or
setting) also gives it apart, {"error": '"horizon" 0: must be at least 1 (periods to forecast)',
"field": "horizon", "problem": "must be at least 1 (periods to forecast)"}.

Repeated requests (same endpoint model identity, data version, series, horizon, quantiles and
covariates) are answered from a bounded cache, emptied when the endpoint's model changes.

Where the history comes from (never mock data): the LATEST PrepareData output of the
training pipeline in the object store. Unless a data location is given (`--data`, or
`data_uri`), the API lists `s3://<bucket>/<prefix>/` for `profile/profile.json` objects and
takes the most recently written; its sibling folders hold `backtest/part-*.csv` (whole
series with covariates; the holdout rows have an empty target) and `holdout/holdout.csv`
(those targets). History = the backtest rows with the holdout targets filled in, i.e. every
observed period up to the end of the data. Future rows repeat the item's grouping and static
attributes; future covariates come from the request, from the holiday calendar for the configured
holiday-flag columns (settings holiday_country, holiday_columns), from the calendar when a
column is a calendar feature (it equals e.g. the day of week in every history row), or are
assumed zero (and the response says which). The same code runs on AWS Lambda (boto3 clients from the factory) and locally.

    python -m deploy.api serve [--port P] [--data URI]      # POST /forecast on 127.0.0.1
    python -m deploy.api invoke --item-id ID [--horizon N] [--quantiles p10,p50,p90]
                                [--covariate promotion=0,0,1,...] [--url URL] [--verbose]

`invoke` prints the response with its numbers rounded to 2 decimals (the HTTP API keeps full
precision); an error is one line on stderr naming the flag as typed (`--horizon 0: must be at
least 1`), exit 2 for input the user can correct, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import re
import sys
import threading
import time
from typing import Any, Optional

import pandas as pd

from deploy.endpoint_codec import REALTIME_PAYLOAD_LIMIT_BYTES, parse_forecast
from deploy.http_base import HttpError, JsonHttpServer, JsonRequestHandler
from processing import tables
from processing.batch_input import MIN_HISTORY_POINTS  # the observed points per item a forecast needs
from processing.data_prep import MAX_ABS_VALUE  # the bound PrepareData, the engine and the endpoint refuse beyond
from processing.kernel import aws_errors, contracts
from processing.kernel.contracts import (
    MEAN_COLUMN,
    PREP_BACKTEST,
    PREP_HOLDOUT,
    PREP_PROFILE,
    PROFILE_FILE,
    pandas_frequency,
)
from processing.kernel.hints import suggest
from processing.kernel.settings import Settings, resolve, sources

LOG = logging.getLogger("deploy.api")
QUANTILE_NAME = contracts.QUANTILE_NAME
DATA_CACHE_SECONDS = 30.0  # how long a discovered data location is trusted before looking again
TAGS_CACHE_SECONDS = 5.0  # how long the endpoint's model package ARN is trusted
PACKAGE_TAG = "model-package-arn"  # the endpoint tag the deploy handler writes (any model-package ARN value counts)
PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[^:]*:\d*:model-package/.+")
MAX_REQUEST_BYTES = 1024 * 1024  # a forecast request is a small JSON object; anything larger is refused (413)
CACHE_ENTRIES = 4096  # forecasts kept (LRU) for repeated requests of the same model and data


# Calendar covariates the API can compute for future periods: a history column that equals one
# of these for every observed row (e.g. the seed data's day_of_week, month, quarter) is derived.
CALENDAR_RULES = {
    "day_of_week": lambda ts: ts.dayofweek,
    "day_of_month": lambda ts: ts.day,
    "day_of_year": lambda ts: ts.dayofyear,
    "week_of_year": lambda ts: ts.isocalendar().week.astype(int),
    "month": lambda ts: ts.month,
    "quarter": lambda ts: ts.quarter,
    "year": lambda ts: ts.year,
    "hour": lambda ts: ts.hour,
    "is_weekend": lambda ts: (ts.dayofweek >= 5).astype(int),
}


def calendar_rule(timestamps: pd.Series, values: pd.Series) -> Optional[str]:
    """The calendar rule `values` follow in every history row (None if none fits or too few rows)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if len(numeric) < 14 or numeric.isna().any() or numeric.nunique() < 2:
        return None
    stamps = pd.Series(pd.to_datetime(timestamps).to_numpy())
    for name, rule in CALENDAR_RULES.items():
        derived = pd.Series(pd.Index(rule(pd.DatetimeIndex(stamps))).to_numpy(), dtype=float)
        if (derived.to_numpy() == numeric.to_numpy(dtype=float)).all():
            return name
    return None


class ForecastCache:
    """A bounded LRU of forecast responses; its keys name the model identity and the data version."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> Optional[dict]:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple, response: dict) -> None:
        with self._lock:
            self._items[key] = response
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def stats(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._items)}


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# the request's fields: an error names them as JSON does ("horizon"); the settings by their name (data)
REQUEST_FIELDS = ("item_id", "horizon", "quantiles", "grouping", "covariates")
_NOT_GIVEN = object()
GIVEN_SHOWN = 80  # at most this many characters of a field's value are quoted back


class ApiError(Exception):
    """An answer other than 200: status code and a message for the caller.

    With `field` (a request field such as "horizon" or "covariates.promotion", or a setting: "data",
    "endpoint_name", "history_periods"), `message` is the problem alone, written once, and the error
    reads `<field> <given>: <problem>`: `"horizon" 0: must be at least 1` for an HTTP client, while
    the CLI puts its flag in the field's place (`--horizon 0: must be at least 1`, see cli_line)."""

    def __init__(self, status: int, message: str, field: Optional[str] = None, given: Any = _NOT_GIVEN):
        self.status = status
        self.field = field
        self.problem = message if field is not None else None
        if field is not None:
            message = f"{_field_text(field, given)}: {message}"
        super().__init__(message)

    def body(self) -> dict:
        """The HTTP answer's JSON: the message, and for a field's error the field and the problem apart
        (`invoke --url` names its flag from them)."""
        extra = {"field": self.field, "problem": self.problem} if self.field is not None else {}
        return {"error": str(self), **extra}


def _field_text(field: str, given: Any) -> str:
    """'"horizon" 0', '"covariates.promotion"' (a column's values are not repeated), 'data s3://b/x'."""
    if field.partition(".")[0] in REQUEST_FIELDS:
        name = json.dumps(field)
        shown = "" if given is _NOT_GIVEN else " " + json.dumps(given)
        shown = shown if len(shown) <= GIVEN_SHOWN else shown[: GIVEN_SHOWN - 3] + "..."
    else:
        name, shown = field, "" if given is _NOT_GIVEN else f" {given}"
    return name + shown


# --------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ForecastRequest:
    item_id: str
    horizon: Optional[int] = None
    quantiles: Optional[tuple] = None
    grouping: tuple = ()  # ((column, value), ...)
    covariates: tuple = ()  # ((column, (values...)), ...)


def _type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
            type(value), type(value).__name__
        )
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (use a finite number)")


# every name a quantile can have (p1..p99): what a misspelt one ('P10', '0.9', 'p 50') is matched against
QUANTILE_NAMES = tuple(f"p{n}" for n in range(1, 100))


def quantile_hint(name: Any) -> str:
    """ " (did you mean 'p90'?)" for a quantile written another way: 'P90', '0.9', '90', 'p 90', 'p90.0'."""
    text = str(name).strip().lower().replace(" ", "")
    try:
        number = float(text.lstrip("pq"))
    except ValueError:
        return suggest(text, QUANTILE_NAMES)
    if 0 < number < 1 and not text.startswith(("p", "q")):
        number *= 100  # a fraction (0.9) names the 90th percentile
    return suggest(f"p{number:g}", QUANTILE_NAMES) if 1 <= number < 100 and number == int(number) else ""


def parse_request(event: Any) -> ForecastRequest:
    """API Gateway proxy event (or the bare JSON object) -> ForecastRequest; ApiError(400) when malformed."""
    body = event.get("body", event) if isinstance(event, dict) and "body" in event else event
    if isinstance(event, dict) and event.get("isBase64Encoded") and isinstance(body, str):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        if len(body) > MAX_REQUEST_BYTES:
            raise ApiError(
                413, f"the request body of {len(body)} characters exceeds the limit of {MAX_REQUEST_BYTES} bytes"
            )
        try:
            body = json.loads(body, parse_constant=_refuse_constant) if body.strip() else None
        except ValueError as error:
            raise ApiError(400, f"the request body is not valid JSON: {error}") from None
        except RecursionError:
            raise ApiError(400, 'the request body is JSON nested too deeply; send {"item_id": "A1", ...}') from None
    if not isinstance(body, dict):
        raise ApiError(
            400, f'the request must be a JSON object like {{"item_id": "A1", "horizon": 7}}; got {_type_name(body)}'
        )
    known = {"item_id", "horizon", "forecast_horizon", "quantiles", "grouping", "covariates"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}; the request takes {sorted(known - {'forecast_horizon'})}")

    item_id = body.get("item_id")
    if item_id is None or item_id == "":
        raise ApiError(400, 'missing "item_id": name the item to forecast, e.g. {"item_id": "A1"}')
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
        raise ApiError(400, f'"item_id" must be a string, got {_type_name(item_id)} {item_id!r}')

    horizon = body.get("horizon", body.get("forecast_horizon"))
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int)):
        raise ApiError(400, f'"horizon" must be a whole number of periods, got {_type_name(horizon)} {horizon!r}')
    if horizon is not None and horizon < 1:
        raise ApiError(400, "must be at least 1 (periods to forecast)", "horizon", horizon)

    quantiles = body.get("quantiles")
    if quantiles is not None:
        if not isinstance(quantiles, list) or not quantiles:
            raise ApiError(400, "must be a non-empty list of quantile names, e.g. p10,p50,p90", "quantiles", quantiles)
        for name in quantiles:
            if not isinstance(name, str) or not QUANTILE_NAME.match(name):
                hint = quantile_hint(name)
                raise ApiError(
                    400,
                    f"{name!r} is not a quantile name{hint}: use p1..p99, e.g. p10,p50,p90",
                    "quantiles",
                    quantiles,
                )
        if len(set(quantiles)) != len(quantiles):
            twice = sorted({q for q in quantiles if quantiles.count(q) > 1})
            raise ApiError(400, f"lists {', '.join(twice)} twice", "quantiles", quantiles)
        quantiles = tuple(quantiles)

    grouping = body.get("grouping")
    grouping = {} if grouping is None else grouping
    if not isinstance(grouping, dict) or not all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in grouping.values()
    ):
        raise ApiError(400, '"grouping" must be an object of column -> value, e.g. {"region": "North"}')

    covariates = body.get("covariates")
    covariates = {} if covariates is None else covariates
    if not isinstance(covariates, dict):
        raise ApiError(
            400, '"covariates" must be an object of column -> list of future values, e.g. {"promotion": [0, 1, 0]}'
        )
    for column, values in covariates.items():
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise ApiError(400, f'"covariates.{column}" must be a list of numbers, one per future period')
        for index, value in enumerate(values):
            if abs(value) > MAX_ABS_VALUE or not math.isfinite(value):
                shown = f"{value!r:.24}" + ("..." if len(repr(value)) > 24 else "")
                raise ApiError(
                    400,
                    f"value {index + 1} is {shown}: covariates must be finite numbers within ±{MAX_ABS_VALUE:g}",
                    f"covariates.{column}",
                )
    return ForecastRequest(
        str(item_id),
        horizon,
        quantiles,
        tuple(sorted((str(k), str(v)) for k, v in grouping.items())),
        tuple(sorted((str(k), tuple(v)) for k, v in covariates.items())),
    )


# --------------------------------------------------------------------------------------------
# The serving data: the latest prepared data, indexed by series
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ServingData:
    source: str  # the prepared-data folder URI (or local path)
    version: str  # changes when the data is rewritten
    profile: dict
    series: dict  # series key tuple -> DataFrame (history rows, user columns)
    by_item: dict  # item id -> [series keys]
    calendar: dict = dataclasses.field(default_factory=dict)  # covariate -> CALENDAR_RULES name
    holidays: "HolidayCalendar" = dataclasses.field(default_factory=lambda: HolidayCalendar("", ()))

    @property
    def columns(self) -> dict:
        return self.profile["columns"]

    @property
    def horizon(self) -> int:
        return int(self.profile["horizon"])

    @property
    def frequency(self) -> str:
        return str(self.profile["frequency"])


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[dict]:
    objects, token = [], None
    while True:
        params = {"Bucket": bucket, "Prefix": prefix}
        if token:
            params["ContinuationToken"] = token
        page = s3.list_objects_v2(**params)
        objects.extend(page.get("Contents", []))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return objects


def _modified(item: dict) -> float:
    value = item.get("LastModified")
    return value.timestamp() if hasattr(value, "timestamp") else float(value or 0)


TRAIN_AND_APPROVE = "run the training pipeline (python -m pipelines.run), then approve its model (python -m deploy.approve approve --latest)"


def discover_prepared_data(settings: Settings, s3: Any) -> tuple[str, str]:
    """(folder URI, version) of the most recently written PrepareData output under the prefix."""
    bucket = settings.effective_bucket
    prefix = settings.prefix.strip("/") + "/"
    suffix = f"{PREP_PROFILE}/{PROFILE_FILE}"
    try:
        profiles = [o for o in _list_keys(s3, bucket, prefix) if o["Key"].endswith("/" + suffix)]
    except Exception as error:  # noqa: BLE001 - a missing bucket or denied listing: say where we looked
        if aws_errors.error_code(error) == "NoSuchBucket":  # nothing trained here yet, or teardown removed it
            raise ApiError(
                503,
                f"no trained and approved model: the bucket s3://{bucket} does not exist (nothing was trained "
                f"here yet, or teardown removed it); {TRAIN_AND_APPROVE}",
            ) from None
        message = " ".join(str(error).split())
        raise ApiError(503, f"cannot list s3://{bucket}/{prefix} for prepared data: {message}") from None
    if not profiles:
        raise ApiError(
            503,
            f"no prepared data under s3://{bucket}/{prefix} (no */{suffix}): {TRAIN_AND_APPROVE}, "
            "or pass --data <PrepareData output folder>",
        )
    latest = max(profiles, key=_modified)
    folder = latest["Key"][: -len(suffix)].rstrip("/")
    return f"s3://{bucket}/{folder}", f"{latest['Key']}@{_modified(latest)}"


class _Reader:
    """Reads files of a prepared-data folder through the S3 client (s3://) or the file system."""

    def __init__(self, root: str, s3: Any):
        self.root, self.s3 = root.rstrip("/"), s3

    def files(self, folder: str) -> list[str]:
        if self.root.startswith("s3://"):
            bucket, key = _split_uri(f"{self.root}/{folder}/")
            return sorted(
                f"s3://{bucket}/{o['Key']}"
                for o in _list_keys(self.s3, bucket, key)
                if o["Key"].endswith((".csv", ".csv.gz"))
            )
        from pathlib import Path

        directory = Path(self.root) / folder
        return sorted(str(p) for p in directory.glob("*.csv*")) if directory.is_dir() else []

    def read(self, location: str) -> bytes:
        if location.startswith("s3://"):
            bucket, key = _split_uri(location)
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with open(location, "rb") as stream:
            return stream.read()


@functools.lru_cache(maxsize=64)
def _holiday_dates(country: str, years: tuple) -> dict:
    """{date: {holiday names}} of the country's holidays on their actual dates (not observed days off)."""
    import holidays

    table = holidays.country_holidays(country, years=list(years), observed=False)
    dates: dict = {}
    for day, names in table.items():
        dates.setdefault(day, set()).update(n.replace(" (observed)", "").strip() for n in str(names).split(";"))
    return dates


@dataclasses.dataclass(frozen=True)
class HolidayCalendar:
    """Future values of holiday-flag covariates from the configured calendar (the `holidays` package).

    Which holidays a column flags is learnt from the history: a holiday of the calendar that the
    history shows unflagged on its dates (and never flagged) is left out, so a column that flags
    only the big days (the seed data flags New Year, 4 July, Thanksgiving and Christmas) gets
    exactly those; holidays the history does not cover are flagged.
    """

    country: str  # ISO 3166 code; "" for none
    columns: tuple  # holiday-flag covariates of this model
    excluded: dict = dataclasses.field(default_factory=dict)  # column -> holiday names it never flags
    problem: Optional[str] = None

    def flags(self, column: str, stamps: pd.DatetimeIndex) -> list:
        dates = _holiday_dates(self.country, tuple(sorted({int(y) for y in stamps.year})))
        excluded = self.excluded.get(column, frozenset())
        return [int(bool(dates.get(day)) and not dates[day] <= excluded) for day in stamps.date]


def holiday_calendar(
    frame: pd.DataFrame, ts_col: str, covariates: list, settings: Optional[Settings]
) -> HolidayCalendar:
    """The calendar for the holiday-flag columns configured in the settings, checked against the history."""
    wanted = tuple(settings.holiday_columns) if settings is not None else ("is_holiday",)
    columns = tuple(c for c in covariates if c in wanted)
    country = (settings.holiday_country if settings is not None else "US") or ""
    if not columns or not country:
        return HolidayCalendar("", columns)
    stamps = pd.to_datetime(frame[ts_col])
    try:
        dates = _holiday_dates(country, tuple(range(int(stamps.dt.year.min()), int(stamps.dt.year.max()) + 1)))
    except (NotImplementedError, KeyError):
        return HolidayCalendar(
            "",
            columns,
            problem=f"holiday_country {country!r} is not known to the holidays "
            "package; holiday flags are assumed 0 (set FORECAST_HOLIDAY_COUNTRY)",
        )
    except ImportError:
        return HolidayCalendar(
            "",
            columns,
            problem="the holidays package is not installed here; holiday flags are assumed 0 (pip install holidays)",
        )
    days = stamps.dt.date
    excluded = {}
    for column in columns:
        flagged_days = set(days[pd.to_numeric(frame[column], errors="coerce") == 1])
        seen_days = set(days)
        flagged = set().union(*(dates[d] for d in flagged_days if d in dates))
        unflagged = set().union(*(dates[d] for d in seen_days - flagged_days if d in dates))
        excluded[column] = frozenset(unflagged - flagged)
    return HolidayCalendar(country, columns, excluded)


DATA_EXPECTED = (
    f"pass a PrepareData output folder (it holds {PREP_PROFILE}/{PROFILE_FILE}, {PREP_BACKTEST}/ and "
    f"{PREP_HOLDOUT}/; e.g. <home>/s3/<bucket>/<prefix>/executions/<id>/PrepareData) or its s3:// URI"
)


def _unreadable_data(root: str, error: Exception) -> str:
    """What is wrong with a data location whose profile cannot be read, without naming the location."""
    if not root.startswith("s3://"):
        from pathlib import Path

        folder = Path(root).expanduser()
        if not folder.exists():
            return f"there is no such folder; {DATA_EXPECTED}"
        if not folder.is_dir():
            return f"is a file, not a folder; {DATA_EXPECTED}"
    if isinstance(error, FileNotFoundError) or aws_errors.is_not_found(error):
        return f"not a PrepareData output (no {PREP_PROFILE}/{PROFILE_FILE} in it); {DATA_EXPECTED}"
    reason = " ".join((aws_errors.error_message(error) or str(error)).split())
    return f"cannot read {PREP_PROFILE}/{PROFILE_FILE} in it ({type(error).__name__}: {reason})"


def load_serving_data(root: str, version: str, s3: Any, settings: Optional[Settings] = None) -> ServingData:
    """History per series: backtest rows (covariates) with the holdout targets filled in."""
    reader = _Reader(root, s3)
    try:
        profile = json.loads(reader.read(f"{reader.root}/{PREP_PROFILE}/{PROFILE_FILE}"))
    except Exception as error:  # noqa: BLE001 - any read failure means no usable data here
        raise ApiError(503, _unreadable_data(root, error), "data", root) from None
    columns = profile["columns"]
    item, ts, target = columns["item_id"], columns["timestamp"], columns["target"]
    keys = [item] + list(columns.get("grouping") or [])
    parts = reader.files(PREP_BACKTEST)
    if not parts:
        raise ApiError(
            503, f"{PREP_BACKTEST}/ in it has no part-*.csv files; rerun PrepareData or {DATA_EXPECTED}", "data", root
        )
    text_columns = keys + [ts]  # ids, grouping and timestamps as text ('007' is not item 7)
    try:
        frame = pd.concat([tables.read_csv_bytes(reader.read(p), p, text_columns) for p in parts], ignore_index=True)
        holdout_files = reader.files(PREP_HOLDOUT)
        holdout = (
            pd.concat(
                [tables.read_csv_bytes(reader.read(p), p, text_columns) for p in holdout_files], ignore_index=True
            )
            if holdout_files
            else None
        )
    except tables.TableError as error:
        raise ApiError(503, f"cannot read the prepared history: {error}") from None
    if holdout is not None:
        actual = holdout.set_index(keys + [ts])[target]
        actual = actual[~actual.index.duplicated()]
        index = pd.MultiIndex.from_frame(frame[keys + [ts]])
        frame[target] = frame[target].fillna(pd.Series(actual.reindex(index).to_numpy(), index=frame.index))
    frame = frame[frame[target].notna()]  # history = observed periods only
    series, by_item = {}, {}
    for key, rows in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        series[key] = rows.reset_index(drop=True)
        by_item.setdefault(key[0], []).append(key)
    sample = frame.head(5000)
    calendar = {
        c: rule for c in (columns.get("covariates") or []) if (rule := calendar_rule(sample[ts], sample[c])) is not None
    }
    covariates = list(columns.get("covariates") or [])
    holidays = holiday_calendar(frame, ts, covariates, settings)
    calendar = {c: rule for c, rule in calendar.items() if c not in holidays.columns}
    LOG.info(
        "serving data %s: %d series; calendar covariates %s; holiday flags %s (%s)",
        root,
        len(series),
        calendar or "none",
        list(holidays.columns) or "none",
        holidays.country or "no calendar",
    )
    return ServingData(root, version, profile, series, by_item, calendar, holidays)


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------
def check_history_periods(periods: Optional[int]) -> None:
    """ApiError when the history sent to the endpoint would be cut below what a forecast needs.

    The endpoint forecasts from fewer points without refusing (a different, poorer forecast), so
    the cap is refused here, for every way the API is started: the bound is the batch input's."""
    if periods is not None and periods < MIN_HISTORY_POINTS:
        raise ApiError(
            400,
            f"must be at least {MIN_HISTORY_POINTS}: a forecast needs at least {MIN_HISTORY_POINTS} observed "
            "points per item (fewer give a different forecast without any error); leave it out to send the whole history",
            "history_periods",
            periods,
        )


class ForecastApi:
    """The handler's state: clients, the data cache and the endpoint's model package ARN cache."""

    def __init__(
        self,
        settings: Settings,
        data_uri: Optional[str] = None,
        endpoint_name: Optional[str] = None,
        history_periods: Optional[int] = None,
    ):
        self.settings = settings
        self.data_uri = data_uri
        self.endpoint_name = endpoint_name or settings.endpoint_name
        check_history_periods(history_periods)
        self.history_periods = history_periods
        self._first_load = threading.Lock()  # only while nothing is loaded: every request needs it
        self._refreshing = threading.Lock()  # one re-check at a time; the others serve what is loaded
        self._clients_lock = threading.Lock()
        self._data: Optional[ServingData] = None
        self._data_checked = 0.0
        self._package: tuple[float, Optional[str], Optional[str]] = (0.0, None, None)  # checked, ARN, identity
        self._clients: dict = {}
        self._csv_cache: dict = {}
        self.cache = ForecastCache(CACHE_ENTRIES)

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is None:
            from deploy.clients import client

            with self._clients_lock:  # building a boto3 client is not thread-safe
                found = self._clients.get(service) or client(service, self.settings)
                self._clients[service] = found
        return found

    # -- data --
    def data(self) -> ServingData:
        """The serving data; a due re-check runs in one request while the others use what is loaded."""
        data = self._data
        if data is not None and time.monotonic() - self._data_checked < DATA_CACHE_SECONDS:
            return data
        if data is None:
            with self._first_load:
                if self._data is None:
                    self._refresh()
                return self._data
        if self._refreshing.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._refreshing.release()
        return self._data

    def _refresh(self) -> None:
        s3 = self.client("s3") if (self.data_uri or "s3://").startswith("s3://") else None
        current = self._data
        if self.data_uri:
            root, version = self.data_uri, self.data_uri
        else:
            try:
                root, version = discover_prepared_data(self.settings, s3)
            except ApiError as error:
                if current is None:
                    raise
                LOG.warning("keeping %s: looking for newer prepared data failed: %s", current.source, error)
                root, version = current.source, current.version
        if current is None or (current.source, current.version) != (root, version):
            self._data = load_serving_data(root, version, s3, self.settings)
        self._data_checked = time.monotonic()

    # -- model package ARN from the endpoint's tags --
    def model_package_arn(self) -> Optional[str]:
        return self._model()[0]

    def model_identity(self) -> Optional[str]:
        """What the endpoint serves (its endpoint config and package ARN): forecasts are cached per identity."""
        return self._model()[1]

    def _model(self) -> tuple[Optional[str], Optional[str]]:
        checked, arn, identity = self._package
        if time.monotonic() - checked < TAGS_CACHE_SECONDS:
            return arn, identity
        try:
            sagemaker = self.client("sagemaker")
            described = sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
            tags = sagemaker.list_tags(ResourceArn=described["EndpointArn"]).get("Tags", [])
            values = [str(t.get("Value", "")) for t in tags if t.get("Key") == PACKAGE_TAG]
            values += [str(t.get("Value", "")) for t in tags if t.get("Key") != PACKAGE_TAG]
            arn = next((value for value in values if PACKAGE_ARN.match(value)), None)
            identity = f"{described.get('EndpointConfigName')}|{arn}|{described.get('LastModifiedTime')}"
        except Exception as error:  # noqa: BLE001 - the forecast is still valid without the ARN
            # a missing endpoint is the invocation's error to report (once); anything else is worth a warning
            level = logging.INFO if aws_errors.is_not_found(error) else logging.WARNING
            LOG.log(level, "cannot read the model package ARN from the endpoint's tags: %s", error)
            arn = identity = None
        if identity != self._package[2]:
            self.cache.clear()  # another model (or none known): nothing cached still holds
        self._package = (time.monotonic(), arn, identity)
        return arn, identity

    # -- one forecast --
    def forecast(self, request: ForecastRequest) -> dict:
        data = self.data()
        columns = data.columns
        ts_col = columns["timestamp"]
        horizon = request.horizon or data.horizon
        if horizon > data.horizon:
            raise ApiError(
                400,
                f"beyond the model's forecast horizon of {data.horizon} periods ({data.frequency}); "
                f"ask for at most {data.horizon}",
                "horizon",
                horizon,
            )
        key = self._series_key(data, request)
        identity = self.model_identity()
        cache_key = (
            identity,
            data.source,
            data.version,
            key,
            horizon,
            request.quantiles,
            request.covariates,
            self.history_periods,
        )
        cached = self.cache.get(cache_key) if identity is not None else None
        if cached is not None:
            return cached | {"generated_at": _now_text(), "cache": "hit"}
        history = data.series[key]
        if self.history_periods:
            history = history.tail(self.history_periods)
        future, covariate_note = self._future_rows(data, history, request, horizon)
        body = self._history_csv(data, key, history) + future.to_csv(index=False, header=False)
        output = self._invoke(body)
        quantiles = self._quantiles(output, request)
        output = output.sort_values(ts_col, kind="stable").head(horizon) if ts_col in output else output.head(horizon)
        records = [
            {
                "timestamp": str(row[ts_col]),
                **{q: _number(row[q]) for q in quantiles},
                MEAN_COLUMN: _number(row[MEAN_COLUMN]),
            }
            for _, row in output.iterrows()
        ]
        response = {
            "item_id": request.item_id,
            "horizon": horizon,
            "frequency": data.frequency,
            "quantiles": list(quantiles),
            "forecast": records,
            "model_package_arn": self.model_package_arn(),
            "endpoint_name": self.endpoint_name,
            "generated_at": _now_text(),
            "history": {
                "source": data.source,
                "points": int(len(history)),
                "first_timestamp": str(history[ts_col].iloc[0]),
                "last_timestamp": str(history[ts_col].iloc[-1]),
            },
            "future_covariates": covariate_note,
        }
        grouping = columns.get("grouping") or []
        if grouping:
            response["grouping"] = dict(zip(grouping, key[1:]))
        if identity is not None and identity == self.model_identity():
            self.cache.put(cache_key, response)
        return response | {"cache": "miss"}

    def _history_csv(self, data: ServingData, key: tuple, history: pd.DataFrame) -> str:
        """The series' history as CSV text (with header), rendered once per data version."""
        cache_key = (data.source, data.version, key)
        text = self._csv_cache.get(cache_key)
        if text is None:
            if len(self._csv_cache) > 100_000:
                self._csv_cache.clear()
            text = self._csv_cache[cache_key] = history.to_csv(index=False)
        return text

    def _series_key(self, data: ServingData, request: ForecastRequest) -> tuple:
        keys = data.by_item.get(request.item_id)
        if not keys:
            hint = suggest(str(request.item_id), data.by_item)
            where = f"the latest prepared data ({data.source}, {len(data.by_item)} items)"
            raise ApiError(404, f"unknown item{hint}: it is not in {where}", "item_id", request.item_id)
        grouping = list(data.columns.get("grouping") or [])
        wanted = dict(request.grouping)
        unknown = sorted(set(wanted) - set(grouping))
        if unknown:
            raise ApiError(
                400,
                f'"grouping" column(s) {unknown} are not grouping columns of this model ({grouping or "it has none"})',
            )
        matches = [k for k in keys if all(dict(zip(grouping, k[1:])).get(c) == v for c, v in wanted.items())]
        if not matches:
            raise ApiError(
                404,
                f"item_id {request.item_id!r} has no series with grouping {wanted}; it has "
                f"{[dict(zip(grouping, k[1:])) for k in keys]}",
            )
        if len(matches) > 1:
            raise ApiError(
                400,
                f'item_id {request.item_id!r} has {len(matches)} series; add "grouping" with '
                f"one of {[dict(zip(grouping, k[1:])) for k in matches]}",
            )
        return matches[0]

    def _future_rows(
        self, data: ServingData, history: pd.DataFrame, request: ForecastRequest, horizon: Optional[int] = None
    ):
        """The model's horizon of future rows: attributes repeated, covariates given, from the calendars, or 0.

        A covariate given in the request has one value per period asked for (`horizon`) or per period
        of the model's horizon; periods beyond the ones given follow the calendar rule or 0.
        """
        columns = data.columns
        ts_col, target_col = columns["timestamp"], columns["target"]
        covariates = list(columns.get("covariates") or [])
        horizon = horizon or data.horizon
        given = dict(request.covariates)
        unknown = sorted(set(given) - set(covariates))
        if unknown:
            hint = suggest(unknown[0], covariates)
            others = f" (and {', '.join(unknown[1:])})" if unknown[1:] else ""
            raise ApiError(
                400,
                f"not a covariate of this model{hint}{others}; its covariates: {', '.join(covariates) or 'none'}",
                f"covariates.{unknown[0]}",
            )
        for column, values in given.items():
            if len(values) not in (horizon, data.horizon):
                counts = (
                    f"{horizon} (the horizon asked for) or {data.horizon} (the model's)"
                    if horizon != data.horizon
                    else f"{data.horizon}"
                )
                raise ApiError(
                    400, f"has {len(values)} value(s); give one per forecast period: {counts}", f"covariates.{column}"
                )
        last = pd.Timestamp(history[ts_col].iloc[-1])
        stamps = pd.date_range(last, periods=data.horizon + 1, freq=pandas_frequency(data.frequency))[1:]
        text = "%Y-%m-%d" if all(s == s.normalize() for s in stamps) else "%Y-%m-%d %H:%M:%S"
        future = pd.DataFrame([history.iloc[-1].to_dict()] * data.horizon, columns=history.columns)
        future[ts_col] = [s.strftime(text) for s in stamps]
        future[target_col] = float("nan")
        derived, holidays_used, assumed = {}, {}, []
        for column in covariates:
            fallback, source = self._known_future(data, column, stamps)
            if column in given:
                values = list(given[column])
                future[column] = values + list(fallback[len(values) :])
                continue
            future[column] = fallback
            if source == "holidays":
                flagged = [stamp for stamp, flag in zip(future[ts_col], fallback) if flag]
                holidays_used[column] = {"country": data.holidays.country, "dates": flagged}
            elif source:
                derived[column] = source
            else:
                assumed.append(column)
        note = {
            "columns": covariates,
            "from_request": sorted(given),
            "from_calendar": derived,
            "holiday_columns": list(data.holidays.columns),
            "from_holiday_calendar": holidays_used,
            "assumed_zero": assumed,
        }
        if data.holidays.problem:
            note["holiday_calendar_problem"] = data.holidays.problem
        if assumed:
            note["note"] = (
                f"no future values were given for {assumed}; the forecast assumes 0 for every "
                'future period. Pass "covariates": {"<column>": [...]} to plan e.g. promotions.'
            )
        return future, note

    @staticmethod
    def _known_future(data: ServingData, column: str, stamps: pd.DatetimeIndex) -> tuple[list, Optional[str]]:
        """(values, source) of a covariate the API can know: a holiday flag, a calendar feature, else 0."""
        if column in data.holidays.columns and data.holidays.country:
            return data.holidays.flags(column, stamps), "holidays"
        rule = data.calendar.get(column)
        if rule:
            return list(pd.Index(CALENDAR_RULES[rule](stamps)).to_numpy()), rule
        return [0] * len(stamps), None

    def _invoke(self, body: str) -> pd.DataFrame:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client("sagemaker-runtime").invoke_endpoint(**invoke_params(self.endpoint_name, body))
            payload = response["Body"].read()
        except ClientError as error:
            missing = aws_errors.is_not_found(error)
            if missing and not self.data_uri:
                self._data_gone()  # teardown --include-data removes the endpoint and the data: say the data
            raise endpoint_error(error, self.endpoint_name, len(body.encode())) from None
        except BotoCoreError as error:
            raise ApiError(502, f"the forecast endpoint {self.endpoint_name!r} is unreachable: {error}") from None
        try:
            output = parse_forecast(payload, response.get("ContentType", "text/csv"))
        except ValueError as error:
            raise ApiError(502, f"the endpoint answered something that is not a forecast: {error}") from None
        if MEAN_COLUMN not in output.columns:
            raise ApiError(
                502, f"the endpoint's answer has no {MEAN_COLUMN!r} column (columns: {list(output.columns)})"
            )
        return output

    def _data_gone(self) -> None:
        """Raise the 503 "no trained and approved model" when the prepared data the loaded history came
        from is gone (a serving API keeps its loaded data while a re-check only fails to list)."""
        try:
            discover_prepared_data(self.settings, self.client("s3"))
        except ApiError as error:
            if error.status == 503 and str(error).startswith("no trained and approved model"):
                self._data = None
                raise
        except Exception:  # noqa: BLE001 - the endpoint's error is the answer then
            return

    @staticmethod
    def _quantiles(output: pd.DataFrame, request: ForecastRequest) -> tuple:
        available = tuple(c for c in output.columns if QUANTILE_NAME.match(str(c)))
        if request.quantiles is None:
            return available
        missing = [q for q in request.quantiles if q not in available]
        if missing:
            raise ApiError(
                400,
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not produced by the deployed model; "
                f"it forecasts {','.join(available)}",
                "quantiles",
                list(request.quantiles),
            )
        return request.quantiles


def _number(text: Any) -> Optional[float]:
    """A forecast cell as a JSON number (null when the endpoint left it empty or non-finite)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# The endpoint's refusals that are about the request's content: the client's to fix, so the
# client gets them (as API Gateway passes on an integration's 4xx). The endpoint's other 4xx
# (404, 405, 408, 411) are about how the API talks to it: a bad gateway like its 5xx.
CLIENT_STATUSES = (400, 413, 422)
_ORIGINAL_STATUS = re.compile(r"Received client error \((\d{3})\)")


def endpoint_error(error: Any, endpoint_name: str, size: int) -> ApiError:
    """The API's answer to InvokeEndpoint's ClientError for a request body of `size` bytes.

    504 when the invocation timed out; 413 when SageMaker's front end refused the body as over
    the real-time payload limit; the endpoint's own 400, 413 or 422 (ModelError with that
    OriginalStatusCode: the input, or a request too large to forecast in time) with its message;
    429 when SageMaker throttles; 502 for everything else (the endpoint failed, is not deployed,
    or its server is not running)."""
    message = " ".join((aws_errors.error_message(error) or str(error)).split())
    code = aws_errors.error_code(error)
    response = getattr(error, "response", {}) or {}
    http = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    name = endpoint_name
    if code in ("ValidationError", "ValidationException") and aws_errors.is_not_found(error):
        # InvokeEndpoint's ValidationError "Endpoint X of account N not found."
        return ApiError(502, f"no such endpoint is deployed; {DEPLOY_HINT}", "endpoint_name", name)
    if "timed out" in message:
        return ApiError(504, f"the forecast endpoint {name!r} did not answer in time: {message}")
    if code == "413" or http == 413:
        return ApiError(
            413,
            f"the forecast request for this item is {size} bytes, over SageMaker's real-time payload limit of "
            f"{REALTIME_PAYLOAD_LIMIT_BYTES} bytes ({REALTIME_PAYLOAD_LIMIT_BYTES >> 20} MB): the item's history is "
            "too long for one request; serve fewer periods (python -m deploy.api serve --history-periods N)",
        )
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        if original is None:
            found = _ORIGINAL_STATUS.search(message)
            original = int(found.group(1)) if found else None
        if original in CLIENT_STATUSES:
            detail = " ".join(str(response.get("OriginalMessage") or message).split())
            return ApiError(int(original), f"the forecast endpoint {name!r} refused the request: {detail}")
    if code in ("ThrottlingException", "TooManyRequestsException") or http == 429:
        return ApiError(429, f"the forecast endpoint {name!r} is throttling requests; retry shortly: {message}")
    return ApiError(502, f"the forecast endpoint {name!r} failed: {message}")


# No registry lookup for the version: this module is the forecast API's Lambda, whose role reads no
# registry (tests/pipelines/test_iam.py); `list` names the right one (after a rollback the newest
# Approved version, where `--latest` would re-approve a Rejected newest one)
DEPLOY_HINT = (
    "approving a model version deploys it (python -m deploy.approve list shows the versions, "
    "python -m deploy.approve approve VERSION deploys one); give the name of a deployed endpoint otherwise"
)


def invoke_params(endpoint_name: str, body: str) -> dict:
    """The InvokeEndpoint request: Autopilot's inference CSV in, its forecast CSV out."""
    return {"EndpointName": endpoint_name, "Body": body.encode(), "ContentType": "text/csv", "Accept": "text/csv"}


JSON_HEADERS = {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"}


def respond(status: int, document: dict) -> dict:
    return {"statusCode": status, "headers": dict(JSON_HEADERS), "body": json.dumps(document)}


_API: Optional[ForecastApi] = None
_API_LOCK = threading.Lock()


def default_api() -> ForecastApi:
    """One ForecastApi per process (per Lambda container): its caches survive between calls."""
    global _API
    with _API_LOCK:
        if _API is None:
            settings = resolve()
            _API = ForecastApi(settings, data_uri=settings.serving_data_uri)
        return _API


def handler(event: Any, context: Any = None, api: Optional[ForecastApi] = None) -> dict:
    """Lambda entry point: API Gateway proxy event in, proxy response out; never raises."""
    try:
        request = parse_request(event)
        return respond(200, (api or default_api()).forecast(request))
    except ApiError as error:
        return respond(error.status, error.body())
    except Exception as error:  # noqa: BLE001 - the caller gets a message, the log gets the traceback
        LOG.exception("forecast request failed")
        return respond(500, {"error": f"internal error ({type(error).__name__}); see the API log"})


lambda_handler = handler


# --------------------------------------------------------------------------------------------
# Local HTTP server and CLI
# --------------------------------------------------------------------------------------------
class ApiServer(JsonHttpServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, api: ForecastApi, port: int, host: str = "127.0.0.1"):
        super().__init__((host, port), _ApiHandler)
        self.api = api

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class _ApiHandler(JsonRequestHandler):
    """POST /forecast and GET /health; every request's work runs in its own thread, under no shared lock."""

    server: ApiServer
    server_version = "forecast-api/1"

    def _send(self, response: dict) -> None:
        """A Lambda proxy response (as `handler` returns it) written as the HTTP answer."""
        headers = dict(response.get("headers", {}))
        content_type = headers.pop("Content-Type", "application/json")
        self.send_body(response["statusCode"], response["body"].encode(), content_type, headers)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        route = self.route
        try:
            body = self.read_body(MAX_REQUEST_BYTES)
        except HttpError as error:
            self._send(respond(error.status, {"error": str(error)}) | {"headers": {**JSON_HEADERS, **error.headers}})
            return
        except Exception as error:  # noqa: BLE001 - an answer, never an empty reply; the log gets the traceback
            LOG.exception("reading the request body failed")
            self.close_connection = True
            self._send(respond(500, {"error": f"internal error reading the request ({type(error).__name__})"}))
            return
        if route != "/forecast":
            status = 405 if route == "/health" else 404
            self._send(respond(status, {"error": f"no route POST {route}; use POST /forecast"}))
            return
        self._send(handler({"body": body.decode("utf-8", errors="replace")}, None, self.server.api))

    def do_GET(self) -> None:  # noqa: N802
        route = self.route
        if route == "/health":
            self._send(
                respond(
                    200,
                    {
                        "status": "ok",
                        "endpoint_name": self.server.api.endpoint_name,
                        "cache": self.server.api.cache.stats(),
                    },
                )
            )
        elif route == "/forecast":
            self._send(
                respond(405, {"error": "use POST /forecast with a JSON body"})
                | {"headers": {**JSON_HEADERS, "Allow": "POST"}}
            )
        else:
            self._send(respond(404, {"error": f"no route GET {route}; use POST /forecast"}))


def parse_covariate_flags(flags: list[str]) -> dict:
    """["promotion=0,0,1", ...] -> {"promotion": [0.0, 0.0, 1.0]}; ValueError naming the flag."""
    covariates: dict = {}
    for flag in flags:
        name, sep, text = flag.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ValueError(
                f"--covariate {flag!r}: expected NAME=V1,V2,... (one value per forecast period), "
                "e.g. --covariate promotion=0,0,1"
            )
        if name in covariates:
            raise ValueError(f"--covariate {name}: given twice")
        values = []
        for position, item in enumerate(text.split(","), start=1):
            try:
                value = float(item)
            except ValueError:
                raise ValueError(f"--covariate {name}: value {position} ({item.strip()!r}) is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"--covariate {name}: value {position} ({item.strip()!r}) is not a finite number")
            values.append(int(value) if value.is_integer() else value)
        covariates[name] = values
    return covariates


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.api", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="HTTP API on loopback: POST /forecast")
    serve.add_argument("--port", type=int, default=None, help=f"the API's port (or {sources('api_port')})")
    invoke = commands.add_parser("invoke", help="one forecast; prints the response JSON")
    invoke.add_argument("--item-id", required=True)
    invoke.add_argument("--horizon", type=int, default=None)
    invoke.add_argument("--quantiles", default=None, help="comma-separated, e.g. p10,p50,p90")
    invoke.add_argument(
        "--covariate",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="known future values of a covariate, one per forecast period, e.g. "
        "--covariate promotion=0,0,1,0,0,0,0 (repeat for several)",
    )
    invoke.add_argument(
        "--url", default=None, help="call a running API (python -m deploy.api serve) instead of the handler in-process"
    )
    for sub in (serve, invoke):
        sub.add_argument(
            "--data",
            default=None,
            help="PrepareData output folder (s3:// URI or local path); default: the latest one under the bucket/prefix "
            f"(or {sources('serving_data_uri')})",
        )
        sub.add_argument("--endpoint-name", default=None, help=f"the endpoint (or {sources('endpoint_name')})")
        sub.add_argument(
            "--history-periods",
            type=int,
            default=None,
            help=f"send at most this many recent periods to the endpoint, at least {MIN_HISTORY_POINTS} (default: all)",
        )
        sub.add_argument("--home", default=None, help=f"local state folder (or {sources('home')})")
    invoke.add_argument("--verbose", action="store_true", help="show the API's INFO log records on stderr")
    serve.set_defaults(verbose=False)
    return parser


# what the CLI calls the request fields and settings an ApiError names (see ApiError.field)
CLI_FLAGS = {
    "item_id": "--item-id",
    "horizon": "--horizon",
    "quantiles": "--quantiles",
    "covariates": "--covariate",
    "data": "--data",
    "endpoint_name": "--endpoint-name",
    "history_periods": "--history-periods",
}
INPUT_STATUSES = (400, 404, 422)  # the request's content is wrong: the CLI exits 2, as for bad usage
CLI_DECIMALS = 2  # the CLI prints forecasts rounded to cents; the HTTP API answers full precision


def cli_line(
    status: int, message: str, field: Optional[str], problem: Optional[str], args: argparse.Namespace
) -> tuple[str, int]:
    """(one line naming the flag as typed, exit code) for an error the API gave (an ApiError in-process,
    or a running API's answer: its "field" and "problem"); 2 for input the user can correct. A field
    the user did not give as a flag (a setting from forecast.toml) keeps the API's own message."""
    head, _, column = (field or "").partition(".")
    flag = CLI_FLAGS.get(head)
    given = getattr(args, "covariate" if head == "covariates" else head, None)
    if flag is not None and problem is not None and given not in (None, []):
        shown = f"{flag} {column}" if head == "covariates" else f"{flag} {given}"
        return f"{shown}: {problem}", 2
    return " ".join(str(message).split()), 2 if status in INPUT_STATUSES else 1


def cli_error(error: ApiError, args: argparse.Namespace) -> tuple[str, int]:
    """cli_line for an ApiError raised in-process."""
    return cli_line(error.status, str(error), error.field, error.problem, args)


def rounded(document: dict, decimals: int = CLI_DECIMALS) -> dict:
    """The response with its forecast numbers rounded for reading (the HTTP API keeps full precision)."""
    forecast = [
        {k: round(v, decimals) if isinstance(v, float) else v for k, v in row.items()}
        for row in document.get("forecast", [])
    ]
    return document | {"forecast": forecast} if "forecast" in document else document


def cli_json(value: Any, indent: int = 0, width: int = 110) -> str:
    """JSON for reading: a list or object that fits in `width` columns on one line (a forecast row, the
    quantiles), larger ones one member a line; still one JSON document (json.loads reads it back)."""
    flat = json.dumps(value)
    if indent and len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        members = [f"{pad}{json.dumps(k)}: {cli_json(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + " " * indent + "}"
    return "[\n" + ",\n".join(f"{pad}{cli_json(v, indent + 2, width)}" for v in value) + "\n" + " " * indent + "]"


def _setup_logging(command: str, verbose: bool) -> None:
    """serve: the server's log (INFO, with times) on stderr. invoke: its stdout is the response JSON, so
    library records go to stderr, warnings only unless --verbose (like the other CLIs, which show only
    what they print)."""
    level = logging.INFO if command == "serve" or verbose else logging.WARNING
    form = (
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if command == "serve"
        else "%(levelname)s %(name)s: %(message)s"
    )
    logging.basicConfig(level=level, format=form, stream=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.command, args.verbose)
    settings = resolve({"home": args.home})
    try:
        api = ForecastApi(
            settings,
            data_uri=args.data or settings.serving_data_uri,
            endpoint_name=args.endpoint_name,
            history_periods=args.history_periods,
        )
    except ApiError as error:
        line, code = cli_error(error, args)
        print(f"error: {line}", file=sys.stderr)
        return code
    if args.command == "serve":
        server = ApiServer(api, args.port if args.port is not None else settings.api_port)
        print(f"forecast API on {server.url}/forecast (endpoint {api.endpoint_name!r}); Ctrl-C to stop", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    request: dict = {"item_id": args.item_id}
    if args.horizon is not None:
        request["horizon"] = args.horizon
    if args.quantiles is not None:
        request["quantiles"] = [q.strip() for q in args.quantiles.split(",") if q.strip()]
    if args.covariate:
        try:
            request["covariates"] = parse_covariate_flags(args.covariate)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.url:
        return _invoke_url(args.url, request, args)
    try:
        document = api.forecast(parse_request(request))
    except ApiError as error:
        line, code = cli_error(error, args)
        print(f"error: {line}", file=sys.stderr)
        return code
    except Exception as error:  # noqa: BLE001 - one line; the log (stderr) gets the traceback
        LOG.exception("forecast failed")
        print(f"error: internal error ({type(error).__name__}: {error})", file=sys.stderr)
        return 1
    print(cli_json(rounded(document)))
    return 0


def _invoke_url(url: str, request: dict, args: argparse.Namespace) -> int:
    """A running API's answer: the response JSON on stdout, or its error as one line naming the flag as
    typed, as in-process (from the answer's "field" and "problem"; the API's message otherwise)."""
    from deploy.endpoint import http_request

    try:
        status, _, body = http_request(
            url.rstrip("/") + "/forecast", "POST", json.dumps(request).encode(), {"Content-Type": "application/json"}
        )
    except OSError as error:
        print(
            f"error: --url {url}: cannot reach the forecast API ({error}); start it with python -m deploy.api serve",
            file=sys.stderr,
        )
        return 1
    try:
        document = json.loads(body)
    except ValueError:
        document = {"error": f"HTTP {status} with a body that is not JSON: {body[:200]!r}"}
    if status != 200:
        answer = document if isinstance(document, dict) else {"error": document}
        field, problem = answer.get("field"), answer.get("problem")
        if not isinstance(field, str) or field.partition(".")[0] not in REQUEST_FIELDS:
            field = None  # the server's own setting (its --data, endpoint): this command's flags do not set it
        line, code = cli_line(
            status,
            answer.get("error", answer),
            field if isinstance(field, str) else None,
            problem if isinstance(problem, str) else None,
            args,
        )
        print(f"error: {line} (HTTP {status})", file=sys.stderr)
        return code
    print(cli_json(rounded(document)))
    return 0


if __name__ == "__main__":
    from processing.kernel import console

    console.exit_with(main)  # `invoke ... | head`: ends quietly, no BrokenPipeError traceback
