"""The model slot: the model one worker serves, how it is swapped, and the board all workers share.

A worker's `ModelSlot` holds one `LoadedModel` (the model, where it came from, its bounded
response cache); a new model is loaded fully beside the old one before the reference is
replaced, so a request never waits for a load or sees half a swap. `resolve_model_dir`
turns what a ModelDataUrl points at (a folder or a model.tar.gz) into a model folder.

`SharedBoard` is the shared memory (made before the workers fork) through which the workers
of one endpoint agree on the model to serve and keep their counters, which /metrics sums.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import mmap
import os
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from deploy.endpoint_codec import BadRequest, media_type
from deploy.http_base import HttpError

CACHE_ENTRIES = 2048  # answers kept per worker and model (LRU) ...
CACHE_BYTES = 64 * 1024 * 1024  # ... and at most this many bytes of them


# --------------------------------------------------------------------------------------------
# The slot (hot swap) and the response cache
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
        return hashlib.blake2b(body, digest_size=20).digest(), media_type(content_type), media_type(accept)

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
    model_dir: str  # the resolved directory
    model_package_arn: Optional[str]
    loaded_at: float
    source: str = ""  # what was asked for (a directory or a model.tar.gz)
    cache: ResponseCache = dataclasses.field(default_factory=ResponseCache, compare=False, repr=False)


def engine_loader(model_dir: Path) -> Any:
    from forecasting import load_model  # the engine is heavy: import it only where it serves

    return for_serving(load_model(model_dir))


def for_serving(model: Any) -> Any:
    """The loaded model, set to predict in the calling thread: no per-series worker pool of its own.

    A candidate trained with ``n_jobs`` > 1 (the statsforecast family) forks a process pool the
    first time a request holds 64 series or more. In an endpoint worker that fork would happen
    while other request threads run (locks they hold are copied locked into the children), and
    the pool and its cancel flag are shared by every request of the process, so one request
    that fails stops the chunks of another. The endpoint already runs one worker process per
    core; each request predicts in its own thread.
    """
    for candidate in (getattr(model, "candidates", None) or {}).values():
        params = getattr(candidate, "params", None)
        if isinstance(params, dict) and int(params.get("n_jobs") or 1) > 1:
            params["n_jobs"] = 1
    return model


MODEL_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")  # the archive names resolve_model_dir extracts


def resolve_model_dir(path: Path, cache_root: Path) -> Path:
    """A model directory from what a ModelDataUrl points at: a directory or a model.tar.gz."""
    path = Path(path)
    if path.is_dir():
        # a training output folder (leaderboard.csv + model/) rather than the artifact itself
        nested = path / "model"
        if nested.is_dir() and not any(p.suffix in (".joblib", ".pkl") for p in path.iterdir()):
            return nested
        return path
    if path.is_file() and path.name.endswith(MODEL_ARCHIVE_SUFFIXES):
        stat = path.stat()
        target = cache_root / f"{path.name.split('.')[0]}-{stat.st_size}-{int(stat.st_mtime_ns)}"
        if not target.is_dir():
            cache_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root))
            with tarfile.open(path) as archive:
                archive.extractall(staging, filter="data")
            if target.exists():  # another loader (another worker) won the race
                shutil.rmtree(staging, ignore_errors=True)
            else:
                try:
                    os.replace(staging, target)
                except OSError:  # the other worker renamed first
                    shutil.rmtree(staging, ignore_errors=True)
        return target
    raise BadRequest(
        f"model artifact {path} does not exist (expected a model directory or model.tar.gz written by the AutoML step)"
    )


class ModelSlot:
    """The serving model of one worker; a new one is loaded fully before the reference is replaced."""

    def __init__(self, loader: Callable[[Path], Any], cache_root: Path):
        self._loader = loader
        self._cache_root = cache_root
        self._lock = threading.Lock()  # guards the reference only
        self._current: Optional[LoadedModel] = None

    @property
    def current(self) -> Optional[LoadedModel]:
        with self._lock:
            return self._current

    def prepare(self, model_dir: str | Path, model_package_arn: Optional[str] = None) -> LoadedModel:
        """Load a model without serving it yet (the slow part; no lock held); BadRequest when it cannot be."""
        directory = resolve_model_dir(Path(model_dir), self._cache_root)
        try:
            model = self._loader(directory)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, EOFError) as error:
            # a folder or archive that holds no loadable model is the caller's mistake, not the server's
            raise BadRequest(f"cannot load a model from {model_dir}: {type(error).__name__}: {error}") from None
        return LoadedModel(model, str(directory), model_package_arn, time.time(), str(model_dir))

    def swap(self, loaded: LoadedModel) -> Optional[LoadedModel]:
        with self._lock:
            replaced, self._current = self._current, loaded
        return replaced


# --------------------------------------------------------------------------------------------
# The board: what every worker shares (desired model, counters, latency histogram)
# --------------------------------------------------------------------------------------------
_HEADER = ("seq", "generation", "record_length", "reloads", "started_at_ms", "ready", "spare2", "spare3")
_SLOT = (
    "pid",
    "loaded_generation",
    "failed_generation",
    "requests",
    "invocations",
    "invocation_errors",
    "errors_4xx",
    "errors_5xx",
    "cache_hits",
    "cache_misses",
    "cache_entries",
    "latency_count",
    "latency_sum_us",
    "latency_max_us",
    "last_error_at_ms",
)
_ROUTES = ("/ping", "/invocations", "/metrics", "/admin/reload", "other")
_STATUSES = ("200", "400", "403", "404", "405", "408", "411", "413", "415", "500", "503", "other")
_LATENCY_EDGES_MS = tuple(0.05 * 1.1**k for k in range(180))  # 0.05 ms .. about 1.4 h, 10 % apart
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
        self._lock = threading.Lock()  # this process's writers of its slot
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
                data = bytes(self._map[self._record_at : self._record_at + length])
                if self._header("seq") == before:
                    return generation, (json.loads(data) if length else None)
            time.sleep(0.001)

    def publish(self, record: dict) -> int:
        data = json.dumps(record).encode()
        if len(data) > _RECORD_BYTES:
            raise BadRequest(f"the model location is too long ({len(data)} bytes of JSON, at most {_RECORD_BYTES})")
        seq = _HEADER.index("seq")
        self._ints[seq] += 1  # odd: writing
        self._map[self._record_at : self._record_at + len(data)] = data
        self._ints[_HEADER.index("record_length")] = len(data)
        generation = self._header("generation") + 1
        self._ints[_HEADER.index("generation")] = generation
        self._ints[seq] += 1  # even: consistent
        return generation

    def count_reload(self) -> int:
        self._ints[_HEADER.index("reloads")] += 1  # only the coordinator (under the file lock) writes it
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
                self._map[at : at + _ERROR_BYTES] = len(text).to_bytes(2, "little") + text.ljust(
                    _ERROR_BYTES - 2, b"\0"
                )
                ints[base + _SLOT.index("last_error_at_ms")] = int(time.time() * 1000)

    def error_text(self, index: int) -> str:
        at = self._errors_at + index * _ERROR_BYTES
        length = int.from_bytes(self._map[at : at + 2], "little")
        return bytes(self._map[at + 2 : at + 2 + length]).decode("utf-8", "replace")

    def snapshot(self) -> dict:
        """Every worker's counters summed; latency percentiles from the summed histogram (10 % buckets)."""
        totals = {
            name: 0
            for name in _SLOT
            if name not in ("pid", "loaded_generation", "failed_generation", "latency_max_us", "last_error_at_ms")
        }
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
            latency |= {
                f"p{q}": round(min(_bucket_value(buckets, count * q / 100.0), latency_max / 1000.0), 3)
                for q in (50, 90, 99)
            }
            latency |= {
                "mean": round(totals["latency_sum_us"] / count / 1000.0, 3),
                "max": round(latency_max / 1000.0, 3),
            }
        live = self.live()
        return {
            "workers": len(live),
            "worker_pids": [self.get(i, "pid") for i in live],
            "invocations_by_worker": {str(self.get(i, "pid")): self.get(i, "invocations") for i in live},
            "uptime_seconds": round(time.time() - self._header("started_at_ms") / 1000.0, 3),
            "requests": totals["requests"],
            "requests_by_route": {k: v for k, v in routes.items() if v},
            "responses_by_status": {k: v for k, v in statuses.items() if v},
            "invocations": totals["invocations"],
            "invocation_errors": totals["invocation_errors"],
            "errors_4xx": totals["errors_4xx"],
            "errors_5xx": totals["errors_5xx"],  # of /invocations
            "latency_ms": latency,
            "cache": {
                "hits": totals["cache_hits"],
                "misses": totals["cache_misses"],
                "entries": totals["cache_entries"],
            },
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
