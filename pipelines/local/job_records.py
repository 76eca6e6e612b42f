"""The local SageMaker jobs' records on disk (FORECAST_HOME/sagemaker/<kind>/<name>.json).

Shared by the local SageMaker API (sagemaker_jobs) and the AutoML worker process, which saves
its job's progress without importing the API (no import cycle between the two). Both write the
same job's record, so every change after its creation goes through `update`, under the record's lock.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

from pipelines.local.store import atomic_write_bytes
from processing.atomic import file_lock


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def to_json(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__datetime__"}:
            return datetime.datetime.fromisoformat(value["__datetime__"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def record_path(home: Path, kind: str, name: str) -> Path:
    return Path(home) / "sagemaker" / kind / f"{name}.json"


def load_all(home: Path, kind: str) -> list:
    """Every readable record of `kind`, in name order (a half-written or unreadable one is skipped)."""
    records = []
    for path in sorted(record_path(home, kind, "*").parent.glob("*.json")):
        try:
            records.append(from_json(json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def load(home: Path, kind: str, name: str) -> Optional[dict]:
    path = record_path(home, kind, name)
    if not path.is_file():
        return None
    return from_json(json.loads(path.read_text()))


def save(home: Path, kind: str, name: str, record: dict) -> None:
    atomic_write_bytes(
        record_path(home, kind, name), json.dumps(to_json(record), indent=2, default=str).encode("utf-8")
    )


def locked(home: Path, kind: str, name: str) -> ContextManager[None]:
    """Hold the record's lock (`<name>.lock` beside it, which `load_all` does not read)."""
    return file_lock(record_path(home, kind, name).with_suffix(".lock"))


def update(home: Path, kind: str, name: str, change: Callable[[dict], object]) -> Optional[dict]:
    """Load, change in place and save one record under its lock; returns it (None: no such record).

    The runtime and the job's worker process write the same record: a plain load then save by one
    dropped what the other saved in between (the worker's TrainingModels written back to
    AnalyzingData by the runtime adding the worker's pid, or that pid dropped by the worker, so a
    retried run took the live training for a dead one)."""
    with locked(home, kind, name):
        record = load(home, kind, name)
        if record is None:
            return None
        change(record)
        save(home, kind, name, record)
        return record
