"""The local endpoint: real HTTP server processes with the SageMaker inference-container contract.

Approving a model locally deploys it here, the way SageMaker hosts an Autopilot model:

    GET  /ping             200 when every worker has a model loaded (503 while loading)
    POST /invocations      Autopilot's inference input -> Autopilot's output layout
    GET  /metrics          requests, errors, latency percentiles, cache, workers, model package ARN
    POST /admin/reload     {"model_dir": ..., "model_package_arn": ...}: swap the model in every worker
                           (header X-Admin-Token: the token in the server's 0600 state file)

Like SageMaker's model servers it uses every core: a supervisor binds the port and forks
`workers` processes (setting endpoint_workers, FORECAST_ENDPOINT_WORKERS, default the number
of cores) that accept on the one listening socket, each serving with threads. They share a
board in shared memory: the model to serve (a swap loads it in every worker beside the old
one before anyone answers the reload, so no request fails or waits during it), and every
worker's counters, which /metrics sums.

/invocations input (the same rows a batch transform reads; history rows carry the target,
future rows carry known covariates and an EMPTY target):
  - ``text/csv`` (default): CSV with a header row.
  - ``application/json``: ``{"instances": [{"item_id": "a", "timestamp": "...", ...}, ...]}``
    (a missing or null target means "forecast this"), or the pandas "split" shape
    ``{"columns": ["item_id", ...], "data": [["a", ...], ...]}``.
Output: CSV with a header (item id, grouping columns, timestamp, p10, p50, p90, mean), or,
with ``Accept: application/json``, ``{"predictions": [{column: value, ...}, ...]}``.
A repeated request (same body, content type and accept) is answered from the model's bounded
cache (header X-Forecast-Cache: hit); a swap drops the cache with the old model.
Bad input answers 4xx with {"error": message} (400 malformed or non-finite values, 405 other
methods, 408 a body that does not arrive in time, 413 over the 6 MB real-time payload limit);
model failures 500; never a traceback.

Process control (state file ``<home>/endpoints/<name>.json``, log ``<name>.log`` beside it):
    python -m deploy.endpoint serve --model-dir D [--port P] [--name N] [--workers W]   (foreground)
    python -m deploy.endpoint start --model-dir D [--port P] [--name N] [--workers W]   (background)
    python -m deploy.endpoint reload --model-dir D [--model-package-arn A]
    python -m deploy.endpoint status | stop
`status` exits 0 for a live server, 1 for none, 3 for a dead one (its state file is left but its
process was killed or crashed).
"""
from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import http.client
import io
import json
import logging
import mmap
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from deploy.http_base import HttpError, JsonRequestHandler
from processing.atomic import write_text_atomic
from processing.kernel.process_env import configure_threads

LOG = logging.getLogger("deploy.endpoint")
HOST = "127.0.0.1"
ADMIN_HEADER = "X-Admin-Token"
CACHE_HEADER = "X-Forecast-Cache"
REALTIME_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024   # SageMaker real-time InvokeEndpoint: 6 MB request body
MAX_BODY_BYTES = REALTIME_PAYLOAD_LIMIT_BYTES    # the container refuses what SageMaker would never pass on
MAX_ABS_VALUE = 1e15                     # numbers beyond this overflow the models' sums of squares
CACHE_ENTRIES = 2048                     # answers kept per worker and model (LRU) ...
CACHE_BYTES = 64 * 1024 * 1024           # ... and at most this many bytes of them
FOLLOW_SECONDS = 0.02                    # how often a worker looks for a new model on the board
RELOAD_TIMEOUT_SECONDS = 300.0           # every worker must have loaded a new model within this
STATE_WATCH_SECONDS = 2.0                # a server whose state file disappears stops itself
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class BadRequest(ValueError):
    """The caller's input is wrong (answered with 400 and this message)."""


class EndpointError(RuntimeError):
    """Starting, reaching or stopping a local endpoint failed; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Request and response bodies
# --------------------------------------------------------------------------------------------
def _media_type(header: Optional[str]) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_body(body: bytes, content_type: Optional[str], text_columns: tuple = ()):
    """Inference input -> DataFrame. CSV (header present) by default; JSON by content type.

    `text_columns` (the model's item id, grouping and timestamp columns) are read as text, so
    an item called "007" stays "007" instead of becoming the number 7.
    """
    import pandas as pd

    if not body or not body.strip():
        raise BadRequest("empty request body: send the item's history rows and future rows "
                         "(CSV with a header, or JSON {\"instances\": [...]})")
    media = _media_type(content_type)
    if media in ("application/json", "application/jsonlines", "text/json"):
        frame = _parse_json(body)
        for column in text_columns:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        return frame
    if media not in ("", "text/csv", "text/plain", "application/octet-stream", "*/*"):
        raise BadRequest(f"unsupported Content-Type {content_type!r}: use text/csv (header present) "
                         "or application/json")
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
    if isinstance(document, dict) and "instances" in document:
        rows = document["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadRequest('"instances" must be a non-empty list of objects, one per row '
                             '({"item_id": ..., "timestamp": ..., "target_value": ...})')
        return pd.DataFrame.from_records(rows)
    if isinstance(document, dict) and "columns" in document and "data" in document:
        columns, data = document["columns"], document["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest('"columns" must be a list of column names')
        if not isinstance(data, list) or not data:
            raise BadRequest('"data" must be a non-empty list of rows')
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadRequest(f'"data" row {index} must be a list of {len(columns)} values '
                                 f"(one per column), got {row!r:.80}")
        return pd.DataFrame(data, columns=columns)
    raise BadRequest('JSON input must be {"instances": [{...row...}, ...]} or '
                     '{"columns": [...], "data": [[...], ...]}')


def render_body(frame, accept: Optional[str]) -> tuple[bytes, str]:
    """Forecast frame -> (body, content type): CSV unless the caller accepts only JSON."""
    media = _media_type(accept)
    if media in ("application/json", "text/json"):
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        return json.dumps({"predictions": records}).encode(), "application/json"
    return frame.to_csv(index=False).encode(), "text/csv"


# --------------------------------------------------------------------------------------------
# The model slot (hot swap), the response cache
# --------------------------------------------------------------------------------------------
class ResponseCache:
    """A bounded LRU of answers (entries and bytes) for one loaded model: a swap drops it whole."""

    def __init__(self, max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(body: bytes, content_type: Optional[str], accept: Optional[str]) -> tuple:
        return hashlib.blake2b(body, digest_size=20).digest(), _media_type(content_type), _media_type(accept)

    def get(self, key: tuple) -> Optional[tuple]:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, payload: bytes, content_type: str) -> None:
        if len(payload) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (payload, content_type)
            self._bytes += len(payload)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (old, _) = self._items.popitem(last=False)
                self._bytes -= len(old)

    def __len__(self) -> int:
        return len(self._items)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    model: Any
    model_dir: str                       # the resolved directory
    model_package_arn: Optional[str]
    loaded_at: float
    source: str = ""                     # what was asked for (a directory or a model.tar.gz)
    cache: ResponseCache = dataclasses.field(default_factory=ResponseCache, compare=False, repr=False)


def engine_loader(model_dir: Path) -> Any:
    from forecasting import load_model  # the engine is heavy: import it only where it serves

    return load_model(model_dir)


def resolve_model_dir(path: Path, cache_root: Path) -> Path:
    """A model directory from what a ModelDataUrl points at: a directory or a model.tar.gz."""
    path = Path(path)
    if path.is_dir():
        # a training output folder (leaderboard.csv + model/) rather than the artifact itself
        nested = path / "model"
        if nested.is_dir() and not any(p.suffix in (".joblib", ".pkl") for p in path.iterdir()):
            return nested
        return path
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        stat = path.stat()
        target = cache_root / f"{path.name.split('.')[0]}-{stat.st_size}-{int(stat.st_mtime_ns)}"
        if not target.is_dir():
            cache_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root))
            with tarfile.open(path) as archive:
                archive.extractall(staging, filter="data")
            if target.exists():   # another loader (another worker) won the race
                shutil.rmtree(staging, ignore_errors=True)
            else:
                try:
                    os.replace(staging, target)
                except OSError:   # the other worker renamed first
                    shutil.rmtree(staging, ignore_errors=True)
        return target
    raise BadRequest(f"model artifact {path} does not exist (expected a model directory or "
                     "model.tar.gz written by the AutoML step)")


class ModelSlot:
    """The serving model of one worker; a new one is loaded fully before the reference is replaced."""

    def __init__(self, loader: Callable[[Path], Any], cache_root: Path):
        self._loader = loader
        self._cache_root = cache_root
        self._lock = threading.Lock()          # guards the reference only
        self._current: Optional[LoadedModel] = None

    @property
    def current(self) -> Optional[LoadedModel]:
        with self._lock:
            return self._current

    def prepare(self, model_dir: str | Path, model_package_arn: Optional[str] = None) -> LoadedModel:
        """Load a model without serving it yet (the slow part; no lock held)."""
        directory = resolve_model_dir(Path(model_dir), self._cache_root)
        return LoadedModel(self._loader(directory), str(directory), model_package_arn, time.time(), str(model_dir))

    def swap(self, loaded: LoadedModel) -> Optional[LoadedModel]:
        with self._lock:
            replaced, self._current = self._current, loaded
        return replaced


# --------------------------------------------------------------------------------------------
# The board: what every worker shares (desired model, counters, latency histogram)
# --------------------------------------------------------------------------------------------
_HEADER = ("seq", "generation", "record_length", "reloads", "started_at_ms", "ready", "spare2", "spare3")
_SLOT = ("pid", "loaded_generation", "failed_generation", "requests", "invocations", "invocation_errors",
         "errors_4xx", "errors_5xx", "cache_hits", "cache_misses", "cache_entries", "latency_count",
         "latency_sum_us", "latency_max_us", "last_error_at_ms")
_ROUTES = ("/ping", "/invocations", "/metrics", "/admin/reload", "other")
_STATUSES = ("200", "400", "403", "404", "405", "408", "411", "413", "415", "500", "503", "other")
_LATENCY_EDGES_MS = tuple(0.05 * 1.1 ** k for k in range(180))       # 0.05 ms .. about 1.4 h, 10 % apart
_RECORD_BYTES = 8192
_ERROR_BYTES = 512


class SharedBoard:
    """Shared memory (an anonymous MAP_SHARED mmap made before the workers fork).

    The desired model is a JSON record behind a sequence lock: a coordinator (one at a time,
    under a file lock) writes it and bumps `generation`; every worker's follower thread sees
    the new generation, loads the model beside the old one, swaps, and writes the generation
    it now serves into its slot. Each worker writes only its own slot (its own counters and
    latency histogram); `/metrics` on any worker sums all slots.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._slot_ints = len(_SLOT) + len(_ROUTES) + len(_STATUSES) + len(_LATENCY_EDGES_MS) + 1
        ints = len(_HEADER) + workers * self._slot_ints
        self._record_at = ints * 8
        self._errors_at = self._record_at + _RECORD_BYTES
        self._map = mmap.mmap(-1, self._errors_at + workers * _ERROR_BYTES)
        self._ints = memoryview(self._map)[: self._record_at].cast("q")
        self._lock = threading.Lock()          # this process's writers of its slot
        handle, self.lock_path = tempfile.mkstemp(prefix="endpoint-reload-", suffix=".lock")
        os.close(handle)
        self._ints[_HEADER.index("started_at_ms")] = int(time.time() * 1000)

    # -- header --
    def _header(self, name: str) -> int:
        return self._ints[_HEADER.index(name)]

    def desired(self) -> tuple[int, Optional[dict]]:
        """(generation, record) read consistently (sequence lock)."""
        while True:
            before = self._header("seq")
            if before % 2 == 0:
                generation, length = self._header("generation"), self._header("record_length")
                data = bytes(self._map[self._record_at: self._record_at + length])
                if self._header("seq") == before:
                    return generation, (json.loads(data) if length else None)
            time.sleep(0.001)

    def publish(self, record: dict) -> int:
        data = json.dumps(record).encode()
        if len(data) > _RECORD_BYTES:
            raise BadRequest(f"the model location is too long ({len(data)} bytes of JSON, at most {_RECORD_BYTES})")
        seq = _HEADER.index("seq")
        self._ints[seq] += 1                       # odd: writing
        self._map[self._record_at: self._record_at + len(data)] = data
        self._ints[_HEADER.index("record_length")] = len(data)
        generation = self._header("generation") + 1
        self._ints[_HEADER.index("generation")] = generation
        self._ints[seq] += 1                       # even: consistent
        return generation

    def count_reload(self) -> int:
        self._ints[_HEADER.index("reloads")] += 1   # only the coordinator (under the file lock) writes it
        return self._header("reloads")

    @property
    def reloads(self) -> int:
        return self._header("reloads")

    @property
    def generation(self) -> int:
        return self._header("generation")

    @property
    def ready(self) -> bool:
        """Every worker has loaded a model once (set the first time it is true; a respawn does not undo it)."""
        if self._header("ready"):
            return True
        live = self.live()
        if live and all(self.get(i, "loaded_generation") > 0 for i in live):
            self._ints[_HEADER.index("ready")] = 1
            return True
        return False

    @contextlib.contextmanager
    def reload_lock(self, timeout: float) -> Iterator[None]:
        """One coordinated reload at a time across workers (flock on a file each process opens itself)."""
        with open(self.lock_path, "w") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise HttpError(503, "another model swap is still in progress; retry later") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- slots --
    def _at(self, index: int, name: str) -> int:
        return len(_HEADER) + index * self._slot_ints + _SLOT.index(name)

    def get(self, index: int, name: str) -> int:
        return self._ints[self._at(index, name)]

    def set(self, index: int, name: str, value: int) -> None:
        self._ints[self._at(index, name)] = int(value)

    def add(self, index: int, name: str, amount: int = 1) -> None:
        with self._lock:
            self._ints[self._at(index, name)] += amount

    def reset_slot(self, index: int) -> None:
        """A new worker in this slot: it serves nothing yet (its counters carry on)."""
        for name in ("pid", "loaded_generation", "failed_generation", "cache_entries"):
            self.set(index, name, 0)

    def live(self) -> list[int]:
        return [i for i in range(self.workers) if self.get(i, "pid")]

    def record(self, index: int, route: str, status: int, seconds: float, error: Optional[str] = None) -> None:
        base = len(_HEADER) + index * self._slot_ints
        routes_at = base + len(_SLOT)
        statuses_at = routes_at + len(_ROUTES)
        buckets_at = statuses_at + len(_STATUSES)
        route_key = route if route in _ROUTES else "other"
        status_key = str(status) if str(status) in _STATUSES else "other"
        ints = self._ints
        with self._lock:
            ints[base + _SLOT.index("requests")] += 1
            ints[routes_at + _ROUTES.index(route_key)] += 1
            ints[statuses_at + _STATUSES.index(status_key)] += 1
            if route == "/invocations":
                micros = int(seconds * 1e6)
                ints[base + _SLOT.index("invocations")] += 1
                ints[base + _SLOT.index("latency_count")] += 1
                ints[base + _SLOT.index("latency_sum_us")] += micros
                if micros > ints[base + _SLOT.index("latency_max_us")]:
                    ints[base + _SLOT.index("latency_max_us")] = micros
                ints[buckets_at + bisect.bisect_left(_LATENCY_EDGES_MS, seconds * 1000.0)] += 1
                if status >= 400:
                    ints[base + _SLOT.index("invocation_errors")] += 1
                    ints[base + _SLOT.index("errors_4xx" if status < 500 else "errors_5xx")] += 1
            if error:
                text = error.encode("utf-8", "replace")[: _ERROR_BYTES - 2]
                at = self._errors_at + index * _ERROR_BYTES
                self._map[at: at + _ERROR_BYTES] = len(text).to_bytes(2, "little") + text.ljust(_ERROR_BYTES - 2, b"\0")
                ints[base + _SLOT.index("last_error_at_ms")] = int(time.time() * 1000)

    def error_text(self, index: int) -> str:
        at = self._errors_at + index * _ERROR_BYTES
        length = int.from_bytes(self._map[at: at + 2], "little")
        return bytes(self._map[at + 2: at + 2 + length]).decode("utf-8", "replace")

    def snapshot(self) -> dict:
        """Every worker's counters summed; latency percentiles from the summed histogram (10 % buckets)."""
        totals = {name: 0 for name in _SLOT if name not in ("pid", "loaded_generation", "failed_generation",
                                                              "latency_max_us", "last_error_at_ms")}
        routes, statuses = collections.Counter(), collections.Counter()
        buckets = [0] * (len(_LATENCY_EDGES_MS) + 1)
        latency_max, last_error, last_error_at = 0, None, 0
        for index in range(self.workers):
            base = len(_HEADER) + index * self._slot_ints
            for name in totals:
                totals[name] += self._ints[base + _SLOT.index(name)]
            routes_at = base + len(_SLOT)
            for offset, route in enumerate(_ROUTES):
                routes[route] += self._ints[routes_at + offset]
            statuses_at = routes_at + len(_ROUTES)
            for offset, status in enumerate(_STATUSES):
                statuses[status] += self._ints[statuses_at + offset]
            buckets_at = statuses_at + len(_STATUSES)
            for offset in range(len(buckets)):
                buckets[offset] += self._ints[buckets_at + offset]
            latency_max = max(latency_max, self.get(index, "latency_max_us"))
            if self.get(index, "last_error_at_ms") > last_error_at:
                last_error_at, last_error = self.get(index, "last_error_at_ms"), self.error_text(index)
        count = totals["latency_count"]
        latency: dict = {"count": count}
        if count:
            latency |= {f"p{q}": round(min(_bucket_value(buckets, count * q / 100.0), latency_max / 1000.0), 3)
                        for q in (50, 90, 99)}
            latency |= {"mean": round(totals["latency_sum_us"] / count / 1000.0, 3),
                        "max": round(latency_max / 1000.0, 3)}
        live = self.live()
        return {
            "workers": len(live), "worker_pids": [self.get(i, "pid") for i in live],
            "invocations_by_worker": {str(self.get(i, "pid")): self.get(i, "invocations") for i in live},
            "uptime_seconds": round(time.time() - self._header("started_at_ms") / 1000.0, 3),
            "requests": totals["requests"],
            "requests_by_route": {k: v for k, v in routes.items() if v},
            "responses_by_status": {k: v for k, v in statuses.items() if v},
            "invocations": totals["invocations"], "invocation_errors": totals["invocation_errors"],
            "errors_4xx": totals["errors_4xx"], "errors_5xx": totals["errors_5xx"],   # of /invocations
            "latency_ms": latency,
            "cache": {"hits": totals["cache_hits"], "misses": totals["cache_misses"],
                      "entries": totals["cache_entries"]},
            "last_error": last_error,
        }


def _bucket_value(buckets: list, rank: float) -> float:
    """The upper edge (ms) of the histogram bucket holding the `rank`-th smallest latency."""
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank and count:
            return _LATENCY_EDGES_MS[min(index, len(_LATENCY_EDGES_MS) - 1)]
    return _LATENCY_EDGES_MS[-1]


# --------------------------------------------------------------------------------------------
# Value checks: what no model's arithmetic survives is the caller's error, not a model failure
# --------------------------------------------------------------------------------------------
def check_values(frame) -> None:
    """BadRequest naming the column and row of an infinite or absurdly large number."""
    import numpy as np

    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind not in "fiu":
            continue
        values = series.to_numpy(dtype=float)
        bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > MAX_ABS_VALUE)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(f"row {r + 1} ({values[r]:g})" for r in rows[:3])
            raise BadRequest(f"column {column!r}: {shown}{' and more' if len(rows) > 3 else ''}: values must be "
                             f"finite and within ±{MAX_ABS_VALUE:g} (larger ones overflow the models' arithmetic)")


# --------------------------------------------------------------------------------------------
# The HTTP server (one per worker process; all share the listening socket)
# --------------------------------------------------------------------------------------------
class EndpointServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on loopback; joins in-flight requests when it closes.

    Standalone (tests, one process) it binds its own socket and has a one-slot board; as a
    pre-fork worker it takes the supervisor's listening socket and its slot on the shared board.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    request_queue_size = 128   # many clients connecting at once must queue, not be refused

    def __init__(self, port: int, name: str, slot: ModelSlot, host: str = HOST,
                 admin_token: Optional[str] = None, board: Optional[SharedBoard] = None, index: int = 0,
                 sock: Optional[socket.socket] = None, state_file: Optional[Path] = None):
        if sock is None:
            super().__init__((host, port), _Handler)
        else:
            super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = sock
        self.name = name
        self.slot = slot
        self.board = board or SharedBoard(1)
        self.index = index
        self._owns_board = board is None
        if board is None:
            self.board.set(0, "pid", os.getpid())
        self.admin_token = admin_token   # when set, /admin/reload needs it (it is in the 0600 state file)
        self.state_file = state_file
        self._offered: dict[int, LoadedModel] = {}
        self._follower: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"

    @property
    def ready(self) -> bool:
        """This worker serves a model and every worker has loaded one (a replaced worker accepts only once loaded)."""
        return self.slot.current is not None and self.board.ready

    # -- following the board --
    def start_follower(self, parent_pid: Optional[int] = None, exit_on_first_failure: bool = False) -> None:
        self._follower = threading.Thread(target=self._follow, args=(parent_pid, exit_on_first_failure),
                                          name=f"follower-{self.index}", daemon=True)
        self._follower.start()

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()
        if self._owns_board:
            with contextlib.suppress(OSError):
                os.unlink(self.board.lock_path)

    def _follow(self, parent_pid: Optional[int], exit_on_first_failure: bool) -> None:
        while not self._stopping.wait(FOLLOW_SECONDS):
            if parent_pid is not None and os.getppid() != parent_pid:
                print(f"worker {self.index}: the supervisor is gone; stopping", flush=True)
                threading.Thread(target=self.shutdown, daemon=True).start()
                return
            try:
                self.follow_once(exit_on_first_failure)
            except Exception:  # noqa: BLE001 - the follower must outlive any one load
                LOG.exception("worker %d: following the model board failed", self.index)

    def follow_once(self, exit_on_first_failure: bool = False) -> None:
        seen = (self.board.get(self.index, "loaded_generation"), self.board.get(self.index, "failed_generation"))
        if self.board.generation in seen:
            return
        generation, record = self.board.desired()
        if record is None or generation in seen:
            return
        current = self.slot.current
        loaded = self._offered.pop(generation, None)
        try:
            if loaded is None and current is not None and current.source == record["model_dir"] \
                    and current.model_package_arn == record.get("model_package_arn"):
                loaded = current                   # a roll-back to what this worker still serves
            if loaded is None:
                loaded = self.slot.prepare(record["model_dir"], record.get("model_package_arn"))
        except Exception as error:  # noqa: BLE001 - reported on the board; the old model keeps serving
            message = f"{type(error).__name__}: {error}"
            LOG.warning("worker %d cannot load %s: %s", self.index, record["model_dir"], message)
            self.board.record(self.index, "other", 500, 0.0, f"loading {record['model_dir']}: {message}")
            if current is None and exit_on_first_failure:
                print(f"cannot load the model from {record['model_dir']}: {message}", flush=True)
                os._exit(3)
            self.board.set(self.index, "failed_generation", generation)
            return
        if loaded is not current:
            self.slot.swap(loaded)
        self.board.set(self.index, "cache_entries", 0)
        self.board.set(self.index, "loaded_generation", generation)

    # -- coordinating a swap across the workers --
    def coordinate_load(self, model_dir: str, model_package_arn: Optional[str] = None,
                        timeout: float = RELOAD_TIMEOUT_SECONDS) -> dict:
        """Load `model_dir` in every worker, then answer; on any failure all go back to the previous model."""
        with self.board.reload_lock(timeout):
            loaded = self.slot.prepare(model_dir, model_package_arn)   # a bad model fails here, nobody swapped
            _, previous = self.board.desired()
            generation = self.board.publish({"model_dir": str(model_dir), "model_package_arn": model_package_arn})
            self._offered[generation] = loaded
            failed = self._wait_for(generation, timeout)
            if failed:
                reasons = "; ".join(f"worker {i}: {self.board.error_text(i)}" for i in failed)
                if previous is not None:
                    self._wait_for(self.board.publish(previous), timeout)
                raise HttpError(500, f"{len(failed)} worker(s) could not load the model ({reasons}); "
                                     "every worker keeps serving the previous model")
            reloads = self.board.count_reload() if previous is not None else self.board.reloads
        if self.state_file is not None:
            _update_state(self.state_file, loaded)
        return {"model_dir": loaded.model_dir, "model_package_arn": loaded.model_package_arn,
                "reloads": reloads, "workers": len(self.board.live()), "generation": generation}

    def _wait_for(self, generation: int, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        if self._follower is None:            # a server without a follower thread follows here
            self.follow_once()
        while True:
            live = self.board.live()
            failed = [i for i in live if self.board.get(i, "failed_generation") == generation]
            pending = [i for i in live if i not in failed and self.board.get(i, "loaded_generation") != generation]
            if not pending:
                return failed
            if time.monotonic() > deadline:
                raise HttpError(500, f"worker(s) {pending} did not load the model within {timeout:.0f} s")
            time.sleep(0.01)


class _Handler(JsonRequestHandler):
    server: EndpointServer
    # HTTP/1.0: one request per connection, so closing the server never waits on idle keep-alives
    server_version = "forecast-local-endpoint/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("%s " + format, self.address_string(), *args)

    def on_method_not_allowed(self, method: str) -> None:
        self.server.board.record(self.server.index, self.path.split("?")[0], 405, 0.0)

    # -- plumbing --
    def _send(self, status: int, body: bytes, content_type: str, headers: Optional[dict] = None) -> None:
        """Stage the response: it is written after the metrics count it (a reader never lags a client)."""
        self._response = (status, body, content_type, headers or {})

    def _send_json(self, status: int, document: dict, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(document, default=str).encode(), "application/json", headers)

    def _write(self) -> None:
        status, body, content_type, headers = self._response
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        return self.read_body(MAX_BODY_BYTES, HttpError(413, f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."))

    def _route(self, method: str) -> None:
        route = self.path.split("?")[0]
        started = time.perf_counter()
        error = None
        self._response = (500, b'{"error": "no response"}', "application/json", {})
        try:
            self._dispatch(method, route)
        except HttpError as problem:
            error = str(problem)
            self._send_json(problem.status, {"error": error}, problem.headers)
        except BadRequest as problem:
            error = str(problem)
            self._send_json(400, {"error": error})
        except Exception as problem:  # noqa: BLE001 - the server answers 500 instead of dying
            error = f"{type(problem).__name__}: {problem}"
            LOG.exception("request %s %s failed", method, route)
            self._send_json(500, {"error": f"the model failed to forecast: {error}"})
        self.server.board.record(self.server.index, route, self._response[0], time.perf_counter() - started, error)
        try:
            self._write()
        except (BrokenPipeError, ConnectionResetError):
            LOG.info("client closed the connection before the %s %s response", method, route)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # -- routes --
    def _dispatch(self, method: str, route: str) -> int:
        loaded = self.server.slot.current
        if method == "GET" and route == "/ping":
            if not self.server.ready:
                self._send_json(503, {"status": "loading"})
                return 503
            self._send(200, b"", "text/plain")
            return 200
        if method == "GET" and route == "/metrics":
            self._send_json(200, self._metrics(loaded))
            return 200
        if method == "POST" and route == "/invocations":
            return self._invoke(loaded)
        if method == "POST" and route == "/admin/reload":
            token = self.server.admin_token
            if token and not secrets.compare_digest(self.headers.get(ADMIN_HEADER, ""), token):
                self._read_body()
                self._send_json(403, {"error": f"reloading needs the {ADMIN_HEADER} header from the state file"})
                return 403
            return self._reload()
        if route in ("/ping", "/metrics", "/invocations", "/admin/reload"):
            allow = "GET" if route in ("/ping", "/metrics") else "POST"
            raise HttpError(405, f"method {method} is not allowed on {route}; use {allow}", {"Allow": allow})
        self._read_body()
        self._send_json(404, {"error": f"no route {method} {route}; routes: GET /ping, POST /invocations, "
                                       "GET /metrics, POST /admin/reload"})
        return 404

    def _invoke(self, loaded: Optional[LoadedModel]) -> int:
        body = self._read_body()
        if loaded is None:
            self._send_json(503, {"error": "no model is loaded yet; retry when GET /ping answers 200"})
            return 503
        board, index = self.server.board, self.server.index
        content_type, accept = self.headers.get("Content-Type"), self.headers.get("Accept")
        key = ResponseCache.key(body, content_type, accept)
        cached = loaded.cache.get(key)
        if cached is not None:
            board.add(index, "cache_hits")
            self._send(200, cached[0], cached[1], {CACHE_HEADER: "hit"})
            return 200
        board.add(index, "cache_misses")
        context = parse_body(body, content_type, _text_columns(loaded.model))
        check_values(context)
        try:
            forecast = loaded.model.predict(context)
        except (ValueError, KeyError, TypeError) as problem:
            raise BadRequest(f"cannot forecast this input: {problem}") from None
        payload, media = render_body(forecast, accept)
        loaded.cache.put(key, payload, media)
        if loaded is self.server.slot.current:
            board.set(index, "cache_entries", len(loaded.cache))
        self._send(200, payload, media, {CACHE_HEADER: "miss"})
        return 200

    def _reload(self) -> int:
        try:
            request = json.loads(self._read_body() or b"{}")
        except ValueError as error:
            raise BadRequest(f"reload body is not JSON: {error}") from None
        if not isinstance(request, dict) or not isinstance(request.get("model_dir"), str):
            raise BadRequest('reload needs {"model_dir": "<path>", "model_package_arn": "<arn, optional>"}')
        self._send_json(200, self.server.coordinate_load(request["model_dir"], request.get("model_package_arn")))
        return 200

    def _metrics(self, loaded: Optional[LoadedModel]) -> dict:
        document = {"endpoint_name": self.server.name, "url": self.server.url, "pid": os.getpid()}
        document |= self.server.board.snapshot()
        document |= {
            "model_loaded": loaded is not None,
            "model_package_arn": loaded.model_package_arn if loaded else None,
            "model_dir": loaded.model_dir if loaded else None,
            "model_loaded_at": _iso(loaded.loaded_at) if loaded else None,
            "model_reloads": self.server.board.reloads,
        }
        return document


def _text_columns(model: Any) -> tuple:
    """The identifier columns of the model's data (read as text), when the model says which."""
    config = getattr(model, "config", None)
    names = [getattr(config, "item_id_column", None), getattr(config, "timestamp_column", None),
             *(getattr(config, "grouping_columns", None) or ())]
    return tuple(n for n in names if isinstance(n, str))


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# State files and process control
# --------------------------------------------------------------------------------------------
def endpoints_dir(home: Path) -> Path:
    return Path(home) / "endpoints"


def state_path(home: Path, name: str) -> Path:
    return endpoints_dir(home) / f"{name}.json"


def read_state(home: Path, name: str) -> Optional[dict]:
    try:
        return json.loads(state_path(home, name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_json_atomically(path: Path, document: dict) -> None:
    write_text_atomic(path, json.dumps(document, indent=2, default=str))


def _update_state(path: Path, loaded: LoadedModel) -> None:
    """Record the model now served in the state file (after a coordinated swap)."""
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    state |= {"model_dir": loaded.model_dir, "model_package_arn": loaded.model_package_arn,
              "model_loaded_at": _iso(loaded.loaded_at)}
    _write_json_atomically(path, state)


_CHILDREN: dict[int, subprocess.Popen] = {}   # servers this process started (reaped on stop)


def pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie answers kill(0) but serves nothing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def http_request(url: str, method: str = "GET", body: bytes = b"", headers: Optional[dict] = None,
                 timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """One HTTP exchange on loopback (stdlib only): (status, headers, body)."""
    address = url.split("://", 1)[-1]
    hostport, _, path = address.partition("/")
    host, _, port = hostport.partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        connection.request(method, "/" + path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def ping(url: str, timeout: float = 2.0) -> bool:
    try:
        return http_request(url.rstrip("/") + "/ping", timeout=timeout)[0] == 200
    except OSError:
        return False


def running_state(home: Path, name: str) -> Optional[dict]:
    """The state of a live server called `name`, or None (stale state files are ignored)."""
    state = read_state(home, name)
    if state and state.get("pid") and pid_alive(int(state["pid"])):
        return state
    return None


def start(name: str, model_dir: str | Path, *, home: Path, port: int,
          model_package_arn: Optional[str] = None, timeout: float = 180.0,
          any_port_if_busy: bool = True, workers: Optional[int] = None) -> dict:
    """Start `serve` as a background process and wait until /ping answers 200; returns its state."""
    home = Path(home)
    if running_state(home, name):
        raise EndpointError(f"endpoint {name!r} is already running ({state_path(home, name)}); "
                            "reload it with a new model or stop it first")
    directory = endpoints_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    state_path(home, name).unlink(missing_ok=True)
    log_path = directory / f"{name}.log"
    command = [sys.executable, "-m", "deploy.endpoint", "serve", "--name", name, "--home", str(home),
               "--model-dir", str(model_dir), "--port", str(port)]
    if model_package_arn:
        command += ["--model-package-arn", model_package_arn]
    if any_port_if_busy:
        command.append("--any-port-if-busy")
    if workers:
        command += ["--workers", str(workers)]
    env = dict(os.environ, FORECAST_HOME=str(home),
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    _CHILDREN[process.pid] = process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"endpoint {name!r} exited with code {process.returncode} while starting; "
                                f"log {log_path}:\n{_tail(log_path)}")
        state = read_state(home, name)
        if state and state.get("pid") == process.pid and ping(state["url"]):
            return state
        time.sleep(0.2)
    _terminate(process.pid)
    raise EndpointError(f"endpoint {name!r} did not answer /ping within {timeout:.0f}s; "
                        f"log {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)


def stop(home: Path, name: str) -> bool:
    """Stop the server called `name`; False when none was running. Removes its state file."""
    state = read_state(home, name)
    was_running = bool(state and state.get("pid") and pid_alive(int(state["pid"])))
    if was_running:
        _terminate(int(state["pid"]))
    state_path(home, name).unlink(missing_ok=True)
    return was_running


def reload(home: Path, name: str, model_dir: str | Path, model_package_arn: Optional[str] = None,
           timeout: float = 300.0) -> dict:
    """Swap the running server's model (no downtime); raises EndpointError when it fails."""
    state = running_state(home, name)
    if state is None:
        raise EndpointError(f"endpoint {name!r} is not running; start it with "
                            f"python -m deploy.endpoint start --name {name} --model-dir {model_dir}")
    body = json.dumps({"model_dir": str(model_dir), "model_package_arn": model_package_arn}).encode()
    headers = {"Content-Type": "application/json", ADMIN_HEADER: state.get("admin_token", "")}
    status, _, answer = http_request(state["url"] + "/admin/reload", "POST", body, headers, timeout=timeout)
    if status != 200:
        raise EndpointError(f"endpoint {name!r} refused the new model {model_dir}: "
                            f"{_error_message(answer)} (it keeps serving the previous model)")
    return json.loads(answer)


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]


def serve(model_dir: str | Path, *, home: Path, name: str, port: int,
          model_package_arn: Optional[str] = None, any_port_if_busy: bool = False,
          workers: Optional[int] = None, loader: Callable[[Path], Any] = engine_loader) -> int:
    """Bind, fork `workers` server processes on the one socket, supervise them until SIGTERM/SIGINT.

    The supervisor imports no model code and starts no thread before forking (fork-safe); each
    worker loads the model itself, serves with threads, and follows the shared board for swaps.
    A worker that dies is replaced (it loads the model being served). Returns the exit code.
    """
    home = Path(home)
    workers = max(1, int(workers or os.cpu_count() or 1))
    sock = _listen(port, any_port_if_busy)
    board = SharedBoard(workers)
    board.publish({"model_dir": str(model_dir), "model_package_arn": model_package_arn})
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    path = state_path(home, name)
    token = secrets.token_hex(16)
    state = {"name": name, "pid": os.getpid(), "host": HOST, "port": sock.getsockname()[1], "url": url,
             "admin_token": token, "workers": workers,
             "started_at": _iso(time.time()), "log": str(endpoints_dir(home) / f"{name}.log"),
             "model_dir": str(model_dir), "model_package_arn": model_package_arn}
    _write_json_atomically(path, state)
    configure_threads()   # the workers load the model (LightGBM, torch) after this
    if workers > 1:   # one thread per model worker, as statsforecast pins BLAS in its worker processes
        for variable in THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")
    supervisor = _Supervisor(sock, board, name=name, token=token, state_file=path, loader=loader,
                             cache_root=endpoints_dir(home) / "models")
    print(f"endpoint {name!r} listening on {url} with {workers} worker process(es); loading model from "
          f"{model_dir}", flush=True)
    code = supervisor.run()
    try:
        os.unlink(board.lock_path)
    except OSError:
        pass
    current = read_state(home, name)
    if current and current.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
    print(f"endpoint {name!r} stopped", flush=True)
    return code


def _listen(port: int, any_port_if_busy: bool) -> socket.socket:
    def bind(number: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, number))
        except OSError:
            sock.close()
            raise
        sock.listen(EndpointServer.request_queue_size)
        sock.setblocking(False)   # workers race to accept: the losers get EAGAIN instead of blocking
        return sock

    try:
        return bind(port)
    except OSError as error:
        if not any_port_if_busy:
            raise EndpointError(f"cannot listen on {HOST}:{port}: {error}; pick another --port "
                                "(or FORECAST_ENDPOINT_PORT)") from None
        print(f"port {port} is busy ({error}); listening on a free port instead", flush=True)
        return bind(0)


class _Supervisor:
    """Forks the workers, replaces the ones that die, stops them all on SIGTERM/SIGINT."""

    def __init__(self, sock: socket.socket, board: SharedBoard, *, name: str, token: str, state_file: Path,
                 loader: Callable[[Path], Any], cache_root: Path):
        self.sock, self.board, self.name, self.token = sock, board, name, token
        self.state_file, self.loader, self.cache_root = state_file, loader, cache_root
        self.children: dict[int, int] = {}        # pid -> slot
        self.started: dict[int, float] = {}       # slot -> when its worker was forked
        self.stopping = False
        self.exit_code = 0

    def run(self) -> int:
        def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for index in range(self.board.workers):
            self._spawn(index)
        announced, watched = False, time.monotonic()
        while not self.stopping:
            self._reap()
            if not announced and self.board.live() and all(
                    self.board.get(i, "loaded_generation") > 0 for i in self.board.live()):
                _, record = self.board.desired()
                print(f"model loaded from {record['model_dir']} by {len(self.board.live())} worker(s); "
                      "/ping answers 200", flush=True)
                announced = True
            if time.monotonic() - watched > STATE_WATCH_SECONDS:
                watched = time.monotonic()
                if not self._owns_state_file():
                    print(f"state file {self.state_file} is gone or taken over; stopping", flush=True)
                    self.stopping = True
            time.sleep(0.05)
        self._stop_workers()
        self.sock.close()
        return self.exit_code

    def _owns_state_file(self) -> bool:
        try:
            return json.loads(self.state_file.read_text()).get("pid") == os.getpid()
        except FileNotFoundError:
            return False
        except ValueError:
            return True   # being rewritten

    def _spawn(self, index: int) -> None:
        self.board.reset_slot(index)
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:   # the worker
            code = 1
            try:
                code = _worker_main(self.sock, self.board, index, name=self.name, token=self.token,
                                    state_file=self.state_file, loader=self.loader, cache_root=self.cache_root,
                                    parent_pid=parent)
            except BaseException:  # noqa: BLE001 - a worker reports and exits; never returns into the supervisor
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index
        self.started[index] = time.monotonic()
        self.board.set(index, "pid", pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.children.pop(pid, None)
            if index is None:
                continue
            self.board.reset_slot(index)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if code == 3 and not self.board.ready:   # the model cannot be loaded at all: nothing to serve
                print(f"worker {index} could not load the model; stopping the endpoint", flush=True)
                self.exit_code, self.stopping = 3, True
                return
            print(f"worker {index} (pid {pid}) exited with code {code}; starting a new one", flush=True)
            if time.monotonic() - self.started.get(index, 0.0) < 1.0:
                time.sleep(1.0)   # a worker dying at once: do not fork in a tight loop
            self._spawn(index)

    def _stop_workers(self, timeout: float = 15.0) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _worker_main(sock: socket.socket, board: SharedBoard, index: int, *, name: str, token: str,
                 state_file: Path, loader: Callable[[Path], Any], cache_root: Path, parent_pid: int) -> int:
    """One worker: a threaded HTTP server on the shared socket plus the thread that follows the board.

    It loads the model before it accepts any connection, so a replacement worker never answers
    "no model loaded" while the others serve.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)    # until the server exists, SIGTERM just ends us
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C reaches the supervisor, which stops us
    board.set(index, "pid", os.getpid())
    server = EndpointServer(0, name, ModelSlot(loader, cache_root), admin_token=token, board=board, index=index,
                            sock=sock, state_file=state_file)
    server.follow_once(exit_on_first_failure=True)

    def _shutdown(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    server.start_follower(parent_pid=parent_pid, exit_on_first_failure=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.endpoint", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    descriptions = {
        "serve": "Run the endpoint server in the foreground (GET /ping, POST /invocations, GET /metrics).",
        "start": "Start the endpoint server in the background and wait until /ping answers; prints its state "
                 "(URL, pid, port).",
        "reload": "Swap the running endpoint's model without dropping requests.",
        "status": "Print the running endpoint's state and /metrics (requests, errors, latency).",
        "stop": "Stop the running endpoint server.",
    }
    for command in ("serve", "start", "reload"):
        sub = commands.add_parser(command, help=descriptions[command].split(" (")[0].rstrip("."),
                                  description=descriptions[command])
        sub.add_argument("--model-dir", required=True, help="the engine's model directory (or model.tar.gz)")
        sub.add_argument("--model-package-arn", default=None, help="reported by /metrics and the API")
        if command != "reload":
            sub.add_argument("--port", type=int, default=None, help="default: settings endpoint_port")
            sub.add_argument("--any-port-if-busy", action="store_true",
                             help="listen on a free port when --port is taken (the state file says which)")
            sub.add_argument("--workers", type=int, default=None,
                             help="model worker processes (default: settings endpoint_workers, "
                                  "FORECAST_ENDPOINT_WORKERS, else the number of cores)")
    for command in ("status", "stop"):
        commands.add_parser(command, help=descriptions[command].split(" (")[0].rstrip("."),
                            description=descriptions[command])
    for sub in commands.choices.values():
        sub.add_argument("--name", default=None, help="endpoint name (default: settings endpoint_name)")
        sub.add_argument("--home", default=None, help="local state folder (default: FORECAST_HOME)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from processing.kernel.settings import resolve

    args = _parser().parse_args(argv)
    settings = resolve({"home": args.home})
    home, name = settings.home_path, args.name or settings.endpoint_name
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return serve(args.model_dir, home=home, name=name, port=args.port or settings.endpoint_port,
                         model_package_arn=args.model_package_arn, any_port_if_busy=args.any_port_if_busy,
                         workers=args.workers or settings.effective_endpoint_workers)
        elif args.command == "start":
            state = start(name, args.model_dir, home=home, port=args.port or settings.endpoint_port,
                          model_package_arn=args.model_package_arn, any_port_if_busy=args.any_port_if_busy,
                          workers=args.workers)
            print(json.dumps(state, indent=2))
        elif args.command == "reload":
            print(json.dumps(reload(home, name, args.model_dir, args.model_package_arn), indent=2))
        elif args.command == "status":
            return _status(home, name)
        elif args.command == "stop":
            print(f"endpoint {name!r} stopped" if stop(home, name) else f"endpoint {name!r} was not running")
    except (EndpointError, BadRequest) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _status(home: Path, name: str) -> int:
    state = running_state(home, name)
    if state is None:
        left = read_state(home, name)
        if left and left.get("pid"):   # a state file whose server is gone: killed or crashed, not stopped
            package = left.get("model_package_arn")
            again = (f"approving its version again restarts it: python -m deploy.approve approve "
                     f"{package.rsplit('/', 1)[-1]}" if package else
                     f"start it again: python -m deploy.endpoint start --name {name} --model-dir ...")
            print(f"endpoint {name!r} is dead: its server process (pid {left['pid']}, {left.get('url', 'no url')}) "
                  f"is gone (killed or crashed; `stop` was not used); {again}")
            return 3
        print(f"endpoint {name!r} is not running (no live server in {endpoints_dir(home)})")
        return 1
    document = {"state": {k: v for k, v in state.items() if k != "admin_token"}}
    try:
        status, _, body = http_request(state["url"] + "/metrics", timeout=5)
        document["metrics"] = json.loads(body) if status == 200 else {"error": body.decode(errors="replace")}
    except OSError as error:
        document["metrics"] = {"error": f"{state['url']} unreachable: {error}"}
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
