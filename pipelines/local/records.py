"""Execution records: typed while the runtime works on them, plain JSON on disk.

`<FORECAST_HOME>/executions/<id>/execution.json` is read by `--list`, the HTML report and the
Studio as a plain JSON object; `ExecutionRecord.to_dict()` writes exactly that format and
`from_dict()` reads it back (keys it does not know are kept, so an older or newer record
round-trips unchanged).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

from pipelines.local.store import atomic_write_bytes
from processing.kernel.settings import Settings

# Step statuses (SageMaker's names, plus Pending and NotExecuted for steps that have not run)
PENDING, EXECUTING, SUCCEEDED, FAILED, STOPPED, NOT_EXECUTED = (
    "Pending",
    "Executing",
    "Succeeded",
    "Failed",
    "Stopped",
    "NotExecuted",
)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: Optional[datetime.datetime]) -> Optional[str]:
    return moment.isoformat(timespec="seconds") if moment else None


def json_default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def plain(value: Any) -> Any:
    """JSON-safe copy (datetimes to ISO strings) so properties can be recorded and walked."""
    return json.loads(json.dumps(value, default=json_default))


def write_json(path: Path, document: Any) -> None:
    atomic_write_bytes(path, json.dumps(document, indent=2, default=json_default).encode("utf-8"))


def encode_record(document: Any) -> bytes:
    """An execution record as execution.json holds it: compact JSON (the runtime rewrites it 40-odd
    times a run; `python -m json.tool` shows it indented)."""
    return json.dumps(document, separators=(",", ":"), default=json_default).encode("utf-8")


def new_execution_id() -> str:
    """12 lowercase letters/digits like SageMaker's, starting with a letter (valid in job names)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(11))


def executions_dir(settings: Settings) -> Path:
    return settings.home_path / "executions"


def record_path(settings: Settings, execution_id: str) -> Path:
    return executions_dir(settings) / execution_id / "execution.json"


class _Record:
    """to_dict/from_dict for the record dataclasses: the JSON keys are the field names (or JSON_KEYS);
    fields in OPTIONAL are written only when set; unknown keys are kept in `extra`."""

    JSON_KEYS: ClassVar[dict] = {}
    OPTIONAL: ClassVar[tuple] = ()

    extra: dict

    def to_dict(self) -> dict:
        document: dict = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if item.name in self.OPTIONAL and (value is None or value is False or value == []):
                continue
            if isinstance(value, list):
                value = [v.to_dict() if isinstance(v, _Record) else v for v in value]
            document[self.JSON_KEYS.get(item.name, item.name)] = value
        document.update(self.extra)
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        keys = {
            cls.JSON_KEYS.get(f.name, f.name): f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name != "extra"
        }
        known = {keys[k]: v for k, v in data.items() if k in keys}
        extra = {k: v for k, v in data.items() if k not in keys}
        return cls(**cls._typed(known), extra=extra)  # type: ignore[call-arg]

    @classmethod
    def _typed(cls, known: dict) -> dict:
        return known


@dataclass
class StepAttempt(_Record):
    """An earlier, unsuccessful run of a step (a retry keeps it)."""

    attempt: int = 1
    status: Optional[str] = None
    failure_reason: Optional[str] = None
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    duration_seconds: Optional[float] = None
    log: Optional[str] = None
    extra: dict = field(default_factory=dict)


@dataclass
class StepRecord(_Record):
    """One step of an execution: status, timings, outputs, log, and how it came to be (run, reused, cached)."""

    JSON_KEYS: ClassVar[dict] = {"cache_hit": "CacheHitResult"}
    OPTIONAL: ClassVar[tuple] = (
        "note",
        "exit_code",
        "environment",
        "property_files",
        "aws_calls",
        "attempt",
        "attempt_count",
        "attempts",
        "reused",
        "cache_key",
        "cache_hit",
    )

    name: str
    type: str
    display_name: str = ""
    description: str = ""
    depends_on: list = field(default_factory=list)
    status: str = PENDING
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    duration_seconds: Optional[float] = None
    log: Optional[str] = None
    outputs: dict = field(default_factory=dict)
    failure_reason: Optional[str] = None
    note: Optional[str] = None  # why it did not run (branch not taken, a dependency failed)
    exit_code: Optional[int] = None  # the step process's, when it failed
    environment: Optional[dict] = None  # the interpreter a processing step ran in
    property_files: Optional[dict] = None  # property file name -> URI
    aws_calls: Optional[list] = None  # the AWS API calls it made (loopback API)
    attempt: Optional[int] = None  # the execution attempt it ran in
    attempt_count: Optional[int] = None  # how many times it has run
    attempts: Optional[list] = None  # earlier runs (StepAttempt)
    reused: bool = False  # succeeded in an earlier attempt; not run by this one
    cache_key: Optional[str] = None  # its CacheConfig key
    cache_hit: Optional[dict] = None  # SageMaker's CacheHitResult {SourcePipelineExecutionArn}
    extra: dict = field(default_factory=dict)

    @classmethod
    def _typed(cls, known: dict) -> dict:
        if known.get("attempts"):
            known["attempts"] = [
                a if isinstance(a, StepAttempt) else StepAttempt.from_dict(a) for a in known["attempts"]
            ]
        return known

    def as_attempt(self) -> StepAttempt:
        return StepAttempt(
            attempt=self.attempt or 1,
            status=self.status,
            failure_reason=self.failure_reason,
            start_time=self.start_time,
            end_time=self.end_time,
            duration_seconds=self.duration_seconds,
            log=self.log,
        )


@dataclass
class Attempt(_Record):
    """One attempt of an execution: the first run, then each --retry."""

    OPTIONAL: ClassVar[tuple] = ("retried_from",)

    attempt: int = 1
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    status: Optional[str] = None
    failure_reason: Optional[str] = None
    runtime_process: Optional[dict] = None
    retried_from: Optional[str] = None  # the first step a retry ran again
    extra: dict = field(default_factory=dict)


@dataclass
class ExecutionRecord(_Record):
    """What execution.json holds."""

    OPTIONAL: ClassVar[tuple] = ("step_process", "attempt", "attempts")

    execution_id: str
    execution_arn: str = ""
    pipeline_name: str = ""
    status: str = EXECUTING
    failure_reason: Optional[str] = None
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    duration_seconds: Optional[float] = None
    parameters: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    definition: Optional[str] = None  # path of definition.json
    report: Optional[str] = None  # path of report.html
    steps: list = field(default_factory=list)  # StepRecord, in execution order
    properties: dict = field(default_factory=dict)
    runtime_process: Optional[dict] = None  # lets a listing tell a live run from a killed one
    step_pid: Optional[int] = None
    step_process: Optional[dict] = None  # its identity: a dead runtime's step is killed, not a reused pid
    attempt: Optional[int] = None  # the current attempt (None: a record from before retries, 1)
    attempts: list = field(default_factory=list)  # Attempt, the current one last
    extra: dict = field(default_factory=dict)

    @classmethod
    def _typed(cls, known: dict) -> dict:
        known["steps"] = [s if isinstance(s, StepRecord) else StepRecord.from_dict(s) for s in known.get("steps") or []]
        known["attempts"] = [a if isinstance(a, Attempt) else Attempt.from_dict(a) for a in known.get("attempts") or []]
        return known

    def step(self, name: str) -> Optional[StepRecord]:
        return next((s for s in self.steps if s.name == name), None)

    def attempt_history(self) -> list:
        """The attempts so far; a record written before retries existed counts as one attempt."""
        if self.attempts:
            return list(self.attempts)
        return [
            Attempt(
                attempt=1,
                start_time=self.start_time,
                end_time=self.end_time,
                status=self.status,
                failure_reason=self.failure_reason,
                runtime_process=self.runtime_process,
            )
        ]

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, encode_record(self.to_dict()))


def read_record(path: Path) -> ExecutionRecord:
    return ExecutionRecord.from_dict(json.loads(path.read_text()))


__all__ = [
    "Attempt",
    "ExecutionRecord",
    "StepAttempt",
    "StepRecord",
    "PENDING",
    "EXECUTING",
    "SUCCEEDED",
    "FAILED",
    "STOPPED",
    "NOT_EXECUTED",
    "executions_dir",
    "new_execution_id",
    "read_record",
    "record_path",
    "write_json",
    "encode_record",
    "plain",
    "iso",
    "now",
]
