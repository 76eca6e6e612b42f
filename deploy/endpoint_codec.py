"""The endpoint's body codec: Autopilot's inference input in, its forecast layout out.

What the local endpoint (and the API that calls it) agree on about bodies, in one place:

/invocations input (the same rows a batch transform reads; history rows carry the target,
future rows carry known covariates and an EMPTY target):
  - ``text/csv`` (default): CSV with a header row.
  - ``application/json``: ``{"instances": [{"item_id": "a", "timestamp": "...", ...}, ...]}``
    (a missing or null target means "forecast this"), or the pandas "split" shape
    ``{"columns": ["item_id", ...], "data": [["a", ...], ...]}``; every cell a string, a
    number or null, every column named once.
Output: CSV with a header (item id, grouping columns, timestamp, p10, p50, p90, mean), or,
with ``Accept: application/json``, ``{"predictions": [{column: value, ...}, ...]}``.

SageMaker's real-time limits (payload, invocation timeout) are named here too.

Malformed input raises `BadRequest` (answered 400) naming the row and column where it can;
so do numbers no model's arithmetic survives (infinite, or beyond PrepareData's bound).
pandas and numpy are imported inside the functions: the endpoint's supervisor imports this
module before it forks its workers and must not start BLAS threads first.
"""

from __future__ import annotations

import collections
import csv
import io
import json
from typing import Any, Optional

# SageMaker's real-time limits (InvokeEndpoint), here once for the endpoint, the API and the local
# runtime's invoke_endpoint (pipelines.local.limits holds the transform, Lambda and processing ones;
# deploy cannot import pipelines). The request body: at most 6 MB, botocore's InvokeEndpoint Body
# shape says max 6291456. The answer: "A customer's model containers must respond to requests
# within 60 seconds" (InvokeEndpoint API reference); the client then gets a ModelError ("Your
# invocation timed out ...") while the container computes on.
REALTIME_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
INVOCATION_TIMEOUT_SECONDS = 60.0
JSON_TYPES = ("application/json", "application/jsonlines", "text/json")
CSV_TYPES = ("", "text/csv", "text/plain", "application/octet-stream", "*/*")
MAX_GRID_PERIODS = 1_000_000  # periods the items span in all: the engine builds a dense grid of them


class BadRequest(ValueError):
    """The caller's input is wrong (answered with 400 and this message)."""


def media_type(header: Optional[str]) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_body(body: bytes, content_type: Optional[str], text_columns: tuple = ()):
    """Inference input -> DataFrame. CSV (header present) by default; JSON by content type.

    `text_columns` (the model's item id, grouping and timestamp columns) are read as text, so
    an item called "007" stays "007" instead of becoming the number 7.
    """
    import pandas as pd

    if not body or not body.strip():
        raise BadRequest(
            "empty request body: send the item's history rows and future rows "
            '(CSV with a header, or JSON {"instances": [...]})'
        )
    media = media_type(content_type)
    if media in JSON_TYPES:
        frame = _parse_json(body)
        for column in text_columns:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        return frame
    if media not in CSV_TYPES:
        raise BadRequest(
            f"unsupported Content-Type {content_type!r}: use text/csv (header present) or application/json"
        )
    _check_width(_csv_header_width(body), "the CSV header")
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype={c: str for c in text_columns})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not a CSV with a header row: {error}") from None
    if frame.empty:
        raise BadRequest("the CSV has a header but no rows: send history rows and future rows")
    return frame


def _parse_json(body: bytes):
    import pandas as pd

    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest('the body is JSON nested too deeply: send {"instances": [{...row...}, ...]}') from None
    if isinstance(document, dict) and "instances" in document:
        rows = document["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadRequest(
                '"instances" must be a non-empty list of objects, one per row '
                '({"item_id": ..., "timestamp": ..., "target_value": ...})'
            )
        names: set = set()
        for index, row in enumerate(rows, start=1):
            _check_width(len(row), f"row {index}")
            names.update(row)
            for column, value in row.items():
                _check_cell(index, column, value)
        _check_width(len(names), "the rows together")  # from_records makes one column per name seen
        return pd.DataFrame.from_records(rows)
    if isinstance(document, dict) and "columns" in document and "data" in document:
        columns, data = document["columns"], document["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest('"columns" must be a list of column names')
        _check_width(len(columns), '"columns"')
        twice = sorted({c for c, n in collections.Counter(columns).items() if n > 1})
        if twice:
            raise BadRequest(f'"columns" names column {twice[0]!r} twice; name each column once')
        if not isinstance(data, list) or not data:
            raise BadRequest('"data" must be a non-empty list of rows')
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadRequest(
                    f'"data" row {index} must be a list of {len(columns)} values (one per column), got {row!r:.80}'
                )
            for column, value in zip(columns, row):
                _check_cell(index + 1, column, value)
        return pd.DataFrame(data, columns=columns)
    raise BadRequest('JSON input must be {"instances": [{...row...}, ...]} or {"columns": [...], "data": [[...], ...]}')


def max_columns() -> int:
    """Twice the widest Autopilot time-series input (item id, timestamp, target, its grouping,
    numeric and categorical limits): room for columns a model ignores, none for a frame so wide
    that parsing it alone would hold a worker for minutes."""
    from processing.automl_request import MAX_CATEGORICAL_FEATURES, MAX_GROUPING_COLUMNS, MAX_NUMERIC_FEATURES

    return 2 * (3 + MAX_GROUPING_COLUMNS + MAX_NUMERIC_FEATURES + MAX_CATEGORICAL_FEATURES)


def _check_width(count: int, what: str) -> None:
    limit = max_columns()
    if count > limit:
        verb = "have" if what.endswith("together") else "has"
        raise BadRequest(
            f"{what} {verb} {count} columns; the inference input takes at most {limit} (item id, "
            "timestamp, target, grouping columns, covariates and attributes)"
        )


def _csv_header_width(body: bytes) -> int:
    """The number of fields in the CSV's first line, read without parsing the rest."""
    line = body.lstrip()[: body.lstrip().find(b"\n") + 1 or None]
    try:
        return len(next(csv.reader([line.decode("utf-8-sig", errors="replace").rstrip("\r\n")]), []))
    except csv.Error:
        return 0  # pandas says what is wrong with it


def _check_cell(row: int, column: str, value: Any) -> None:
    """A JSON cell is a string, a number, a boolean or null: a list or an object is no table cell."""
    if isinstance(value, (list, dict)):
        kind = "a list" if isinstance(value, list) else "an object"
        raise BadRequest(
            f"row {row} column {column!r} is {kind} ({json.dumps(value)[:60]}); every cell must be "
            "a string, a number or null"
        )


def render_body(frame, accept: Optional[str]) -> tuple[bytes, str]:
    """Forecast frame -> (body, content type): CSV unless the caller accepts only JSON."""
    media = media_type(accept)
    if media in ("application/json", "text/json"):
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        return json.dumps({"predictions": records}).encode(), "application/json"
    return frame.to_csv(index=False).encode(), "text/csv"


def check_values(frame) -> None:
    """BadRequest naming the column and row of an infinite or absurdly large number."""
    import numpy as np

    from processing.data_prep import MAX_ABS_VALUE  # the one bound PrepareData and the engine refuse beyond

    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind not in "fiu":
            continue
        values = series.to_numpy(dtype=float)
        bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > MAX_ABS_VALUE)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(f"row {r + 1} ({values[r]:g})" for r in rows[:3])
            raise BadRequest(
                f"column {column!r}: {shown}{' and more' if len(rows) > 3 else ''}: values must be "
                f"finite and within ±{MAX_ABS_VALUE:g} (larger ones overflow the models' arithmetic)"
            )


def check_span(frame, model: Any) -> None:
    """BadRequest when the items' time spans add up to more periods than a worker should grid.

    The engine fills each series onto a regular grid from its first to its last timestamp, so
    two rows 300 years apart cost 110 000 daily periods (50 such items took 14 s and 1 GB);
    a body of dense rows within the 6 MB limit spans a few hundred thousand at most.
    """
    import pandas as pd

    config = getattr(model, "config", None)
    item, stamp = getattr(config, "item_id_column", None), getattr(config, "timestamp_column", None)
    frequency = getattr(config, "pandas_frequency", None)
    if not isinstance(frequency, str) or item not in frame.columns or stamp not in frame.columns:
        return
    keys = [item] + [c for c in (getattr(config, "grouping_columns", None) or ()) if c in frame.columns]
    try:  # unreadable stamps are the engine's to name; here they only count for nothing
        stamps = pd.to_datetime(frame[stamp], errors="coerce", format="mixed", utc=True)
    except (ValueError, TypeError, OverflowError):
        return
    spans = stamps.groupby([frame[k] for k in keys], sort=False, dropna=False).agg(["min", "max"]).dropna()
    if spans.empty:
        return
    offset = pd.tseries.frequencies.to_offset(frequency)
    anchor = pd.Timestamp("2001-01-01")
    step = (anchor + 12 * offset - anchor) / 12  # a calendar period's mean length (months, weeks)
    nanos = spans["max"].astype("int64").astype(float) - spans["min"].astype("int64").astype(float)
    periods = nanos / float(step.value) + 1  # in floats: 300 years overflow int64 nanoseconds
    total = float(periods.sum())
    if total > MAX_GRID_PERIODS:
        widest = periods.idxmax()
        name = widest if not isinstance(widest, tuple) or len(widest) > 1 else widest[0]
        first, last = spans.loc[widest, "min"], spans.loc[widest, "max"]
        raise BadRequest(
            f"the items span {total:,.0f} {frequency} periods from their first to their last row, more "
            f"than the {MAX_GRID_PERIODS:,} the endpoint forecasts from (item {name!r} alone runs from "
            f"{first:%Y-%m-%d} to {last:%Y-%m-%d}, {periods.max():,.0f} periods); send each item's "
            "recent history and its future rows"
        )


def text_columns(model: Any) -> tuple:
    """The identifier columns of the model's data (read as text), when the model says which."""
    config = getattr(model, "config", None)
    names = [
        getattr(config, "item_id_column", None),
        getattr(config, "timestamp_column", None),
        *(getattr(config, "grouping_columns", None) or ()),
    ]
    return tuple(n for n in names if isinstance(n, str))


def parse_forecast(body: bytes, content_type: Optional[str] = "text/csv"):
    """The endpoint's answer (as `render_body` wrote it) -> DataFrame of text cells; ValueError when it is not one."""
    import pandas as pd

    if media_type(content_type) in JSON_TYPES:
        try:
            records = json.loads(body)["predictions"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'not a {{"predictions": [...]}} document: {error}') from None
        return pd.DataFrame.from_records(records).astype(str)
    try:
        return pd.read_csv(io.BytesIO(body), dtype=str)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"not a forecast CSV: {error}") from None
