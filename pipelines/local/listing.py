"""Reading past executions: `--list`, the Studio, caching and retries all go through `load_executions`."""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable, Mapping

from pipelines.local import records
from pipelines.local.records import executions_dir
from pipelines.local.report import format_duration
from pipelines.local.supervision import mark_if_dead
from processing.kernel.settings import Settings

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


__all__ = ["list_executions", "load_executions", "pipeline_execution_steps"]
