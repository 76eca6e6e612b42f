"""Reading past executions: `--list`, the Studio, caching and retries all go through `load_executions`.

The cache's lookup reads only the executions that ran a step with its key: each success is indexed
as an empty file `executions/.cache-index/<pipeline and step>/<key>/<execution id>` (created when
the step's record is saved Succeeded), so a check does not read every past execution.json of the
home. A home whose history predates the index is scanned once and indexed (the `v1` marker)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from typing import Any, Callable, Mapping

from pipelines.local import records
from pipelines.local.records import executions_dir
from pipelines.local.report import format_duration
from pipelines.local.supervision import mark_if_dead
from processing.kernel.settings import Settings

INDEX_DIR = ".cache-index"  # under executions/: not an execution (no execution.json), so listings skip it
_INDEX_MARKER = "v1"  # the home's history before the index existed has been indexed
_EXECUTION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

_STEP_STATUSES = {
    records.EXECUTING: "Executing",
    records.SUCCEEDED: "Succeeded",
    records.FAILED: "Failed",
    records.STOPPED: "Stopped",
}


def load_executions(settings: Settings) -> list:
    """Every recorded execution (newest first), as the JSON objects on disk; dead runs marked Failed."""
    found = []
    root = executions_dir(settings)
    if root.is_dir():
        for path in root.glob("*/execution.json"):
            try:
                # start times are whole seconds: two runs started in one second are ordered by
                # which record was written last (the later run's)
                written = path.stat().st_mtime_ns
                found.append((mark_if_dead(json.loads(path.read_text()), path), written))
            except (OSError, json.JSONDecodeError, ValueError, KeyError, TypeError):
                continue
    found.sort(key=lambda pair: (pair[0].get("start_time") or "", pair[1]), reverse=True)
    return [record for record, _ in found]


def pipeline_execution_steps(record: Mapping[str, Any]) -> dict:
    """The record's steps as ListPipelineExecutionSteps answers: newest first, with AttemptCount and
    CacheHitResult; steps that never started are not listed, as on SageMaker."""
    steps = []
    for step in records.ExecutionRecord.from_dict(record).steps:
        if step.status not in _STEP_STATUSES or not step.start_time:
            continue
        entry: dict = {
            "StepName": step.name,
            "StepDisplayName": step.display_name or step.name,
            "StepDescription": step.description or "",
            "StartTime": datetime.datetime.fromisoformat(step.start_time),
            "StepStatus": _STEP_STATUSES[step.status],
            "AttemptCount": int(step.attempt_count or 1),
        }
        if step.end_time:
            entry["EndTime"] = datetime.datetime.fromisoformat(step.end_time)
        if step.failure_reason:
            entry["FailureReason"] = str(step.failure_reason)[:1024]
        if step.cache_hit:
            entry["CacheHitResult"] = dict(step.cache_hit)
        steps.append(entry)
    steps.sort(key=lambda e: e["StartTime"], reverse=True)
    return {"PipelineExecutionSteps": steps}


def _detail(record: Mapping[str, Any]) -> str:
    if record.get("failure_reason"):
        return str(record["failure_reason"])
    for step in record.get("steps") or []:
        hit = step.get("CacheHitResult")
        if hit:
            cached = [s["name"] for s in record["steps"] if s.get("CacheHitResult")]
            return f"cache hit: {', '.join(cached)} (from {hit['SourcePipelineExecutionArn'].rsplit('/', 1)[-1]})"
    return ""


def list_executions(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Print past executions: id, pipeline, status, attempt, start, duration, failed step, reason or cache hits."""
    found = load_executions(settings)
    if not found:
        out(f"No local executions yet under {executions_dir(settings)}; run: python -m pipelines.run")
        return
    rows = [("EXECUTION", "PIPELINE", "STATUS", "ATTEMPT", "STARTED (UTC)", "DURATION", "DETAIL")]
    for r in found:
        rows.append(
            (
                r.get("execution_id", "?"),
                r.get("pipeline_name", "?"),
                r.get("status", "?"),
                str(r.get("attempt") or 1),
                (r.get("start_time") or "")[:19].replace("T", " "),
                format_duration(r.get("duration_seconds")),
                _detail(r)[:70],
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    out(
        f"\nRecords and HTML reports: {executions_dir(settings)}/<execution>/; retry a Failed or Stopped "
        "one from its failed step: python -m pipelines.run --retry <execution>"
    )


__all__ = [
    "candidate_records",
    "index_success",
    "list_executions",
    "load_executions",
    "pipeline_execution_steps",
]


def _index_dir(settings: Settings, pipeline_name: str, step_name: str, key: str) -> "os.PathLike":
    scope = hashlib.sha256(f"{pipeline_name}\0{step_name}".encode()).hexdigest()[:16]
    return executions_dir(settings) / INDEX_DIR / scope / key


def index_success(settings: Settings, pipeline_name: str, step_name: str, key: str, execution_id: str) -> None:
    """Note that `execution_id` ran the step successfully with this cache key (its record already saved)."""
    folder = _index_dir(settings, pipeline_name, step_name, key)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / execution_id).touch()  # an empty file: creating it is atomic, two runs never share a name


def _build_index(settings: Settings) -> None:
    """Index the successes of a history written before the index existed (once per home)."""
    for record in load_executions(settings):
        for step in record.get("steps") or []:
            if step.get("status") == "Succeeded" and step.get("cache_key") and record.get("execution_id"):
                index_success(
                    settings, str(record.get("pipeline_name")), step["name"], step["cache_key"], record["execution_id"]
                )
    marker = executions_dir(settings) / INDEX_DIR / _INDEX_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def candidate_records(settings: Settings, pipeline_name: str, step_name: str, key: str) -> list:
    """The execution records that ran this pipeline's step successfully with this key (for find_hit):
    read through the index, not by loading every execution of the home."""
    root = executions_dir(settings)
    if not root.is_dir():
        return []
    if not (root / INDEX_DIR / _INDEX_MARKER).exists():
        _build_index(settings)
    folder = _index_dir(settings, pipeline_name, step_name, key)
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # no success with this key yet
        return []
    found = []
    for name in names:
        if not _EXECUTION_ID.match(name):
            continue
        try:  # an execution deleted since: skipped, as a corrupt record is
            found.append(json.loads((root / name / "execution.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found
