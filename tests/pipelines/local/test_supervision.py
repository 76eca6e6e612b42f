"""Process supervision: identities, killing only what is still the recorded process, nothing outliving its runtime."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

from pipelines.local import supervision
from pipelines.local.sagemaker import LocalSageMakerClient
from processing.kernel.settings import resolve


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)


def _gone_identity() -> dict:
    """The identity of a process that has ended (as a record of a killed runtime holds it)."""
    process = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = supervision.process_identity(process.pid)
    process.communicate(b"")
    return identity


def test_kill_group_kills_the_recorded_process_and_leaves_a_reused_pid_alone():
    process = _sleeper()
    try:
        impostor = dict(supervision.process_identity(process.pid), started="1")  # same pid, another start
        assert supervision.kill_group(impostor, "test") is False and process.poll() is None
        assert supervision.kill_group(supervision.process_identity(process.pid), "test") is True
        assert process.wait(timeout=30) == -9
        assert supervision.kill_group(_gone_identity(), "test") is False
    finally:
        if process.poll() is None:
            process.kill()


def test_given_an_automl_job_whose_runtime_is_gone_when_described_then_it_failed_and_its_worker_is_killed():
    """A training process outliving a killed runtime is stopped at once, not left training unobserved."""
    settings = resolve()
    sm = LocalSageMakerClient(settings)
    worker = _sleeper()  # stands in for the training process of a dead runtime
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        sm._save(
            "automl",
            "fc-orphan",
            {
                "request": {"AutoMLJobName": "fc-orphan"},
                "AutoMLJobName": "fc-orphan",
                "AutoMLJobArn": sm.arn("automl-job", "fc-orphan"),
                "CreationTime": now,
                "LastModifiedTime": now,
                "AutoMLJobStatus": "InProgress",
                "AutoMLJobSecondaryStatus": "TrainingModels",
                "JobLog": "x.log",
                "WorkerPid": worker.pid,
                "WorkerProcess": supervision.process_identity(worker.pid),
                "OwnerProcess": _gone_identity(),
            },
        )

        described = sm.describe_auto_ml_job_v2(AutoMLJobName="fc-orphan")

        assert described["AutoMLJobStatus"] == "Failed"
        assert (
            "the local runtime that owned it" in described["FailureReason"] and "is gone" in described["FailureReason"]
        )
        assert worker.wait(timeout=30) == -9
    finally:
        if worker.poll() is None:
            worker.kill()


def test_given_a_live_owner_then_its_job_is_left_in_progress():
    settings = resolve()
    sm = LocalSageMakerClient(settings)
    worker = _sleeper()
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        sm._save(
            "automl",
            "fc-owned",
            {
                "request": {"AutoMLJobName": "fc-owned"},
                "AutoMLJobName": "fc-owned",
                "AutoMLJobArn": sm.arn("automl-job", "fc-owned"),
                "CreationTime": now,
                "LastModifiedTime": now,
                "AutoMLJobStatus": "InProgress",
                "AutoMLJobSecondaryStatus": "TrainingModels",
                "JobLog": "x.log",
                "WorkerPid": worker.pid,
                "WorkerProcess": supervision.process_identity(worker.pid),
                "OwnerProcess": supervision.process_identity(os.getppid()),
            },
        )  # alive, and not this process
        assert sm.describe_auto_ml_job_v2(AutoMLJobName="fc-owned")["AutoMLJobStatus"] == "InProgress"
        assert worker.poll() is None
    finally:
        worker.kill()
        worker.wait()
