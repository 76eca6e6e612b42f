"""Execution records: typed in the runtime, the same JSON on disk as before (--list, the report and Studio read it)."""

from __future__ import annotations

import copy

from pipelines.local import executors, graph
from pipelines.local.records import Attempt, ExecutionRecord, StepAttempt, StepRecord

# an execution.json as the runtime wrote it before the records were typed (and before retries)
OLD_RECORD = {
    "execution_id": "abc123def456",
    "execution_arn": "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/abc123def456",
    "pipeline_name": "DemandForecastTraining",
    "status": "Failed",
    "failure_reason": "step B failed: boom",
    "start_time": "2026-01-01T00:00:00+00:00",
    "end_time": "2026-01-01T00:01:00+00:00",
    "duration_seconds": 60.0,
    "parameters": {"Score": 0.2},
    "overrides": {},
    "notes": ["a note"],
    "definition": "/h/executions/abc123def456/definition.json",
    "report": "/h/executions/abc123def456/report.html",
    "steps": [
        {
            "name": "A",
            "type": "Processing",
            "display_name": "A display",
            "description": "",
            "depends_on": [],
            "status": "Succeeded",
            "start_time": "2026-01-01T00:00:00+00:00",
            "end_time": "2026-01-01T00:00:10+00:00",
            "duration_seconds": 10.0,
            "log": "/h/log.txt",
            "outputs": {"result": "s3://b/k"},
            "failure_reason": None,
            "environment": {"kind": "image"},
            "property_files": {"Metrics": "s3://b/k/metrics.json"},
            "aws_calls": [{"service": "sagemaker", "operation": "X", "status": 200, "error": None, "count": 1}],
        },
        {
            "name": "B",
            "type": "Processing",
            "display_name": "B",
            "description": "d",
            "depends_on": ["A"],
            "status": "Failed",
            "start_time": "2026-01-01T00:00:10+00:00",
            "end_time": "2026-01-01T00:01:00+00:00",
            "duration_seconds": 50.0,
            "log": "/h/b.txt",
            "outputs": {},
            "failure_reason": "boom",
            "exit_code": 2,
        },
        {
            "name": "C",
            "type": "Fail",
            "display_name": "C",
            "description": "",
            "depends_on": ["B"],
            "status": "NotExecuted",
            "start_time": None,
            "end_time": None,
            "duration_seconds": None,
            "log": None,
            "outputs": {},
            "failure_reason": None,
            "note": "depends on B which did not succeed",
        },
    ],
    "properties": {"A": {"ProcessingJobName": "pipelines-abc123def456-A"}},
    "runtime_process": {"pid": 1, "host": "h", "started": "5"},
    "step_pid": None,
    "a_key_from_a_newer_runtime": {"kept": True},
}


def test_given_a_record_written_before_typing_then_it_round_trips_unchanged():
    record = ExecutionRecord.from_dict(copy.deepcopy(OLD_RECORD))
    assert isinstance(record.steps[0], StepRecord) and record.steps[1].exit_code == 2
    assert record.step("C").note == "depends on B which did not succeed"
    assert record.to_dict() == OLD_RECORD


def test_given_no_attempts_recorded_then_the_history_is_the_one_attempt_the_record_describes():
    [attempt] = ExecutionRecord.from_dict(OLD_RECORD).attempt_history()
    assert attempt == Attempt(
        attempt=1,
        start_time=OLD_RECORD["start_time"],
        end_time=OLD_RECORD["end_time"],
        status="Failed",
        failure_reason="step B failed: boom",
        runtime_process=OLD_RECORD["runtime_process"],
    )
    assert "retried_from" not in attempt.to_dict()


def test_given_a_retried_step_then_its_cache_hit_and_attempts_use_the_on_disk_names():
    step = StepRecord(
        name="A",
        type="Processing",
        attempt=2,
        attempt_count=2,
        attempts=[StepAttempt(attempt=1, status="Failed", failure_reason="x")],
        cache_hit={"SourcePipelineExecutionArn": "arn:..."},
    )
    document = step.to_dict()
    assert document["CacheHitResult"] == {"SourcePipelineExecutionArn": "arn:..."} and "cache_hit" not in document
    assert document["attempts"] == [
        {
            "attempt": 1,
            "status": "Failed",
            "failure_reason": "x",
            "start_time": None,
            "end_time": None,
            "duration_seconds": None,
            "log": None,
        }
    ]
    assert "reused" not in document and "note" not in document  # unset optional keys stay out
    assert StepRecord.from_dict(document) == step


def test_every_step_type_the_graph_accepts_has_exactly_one_executor_class():
    assert set(executors.EXECUTORS) == set(graph.SUPPORTED_TYPES)
    assert len({cls for cls in executors.EXECUTORS.values()}) == len(graph.SUPPORTED_TYPES)
    assert all(cls.type == name for name, cls in executors.EXECUTORS.items())
