"""A job's record written by two processes at once (the runtime and the job's worker): no change is lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pipelines.local import job_records

ROOT = Path(__file__).resolve().parents[3]

# each writer adds its own key N times, each time a read-modify-write of the whole record
_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipelines.local import job_records

    home, key, rounds, plain = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "plain"
    for i in range(rounds):
        if plain:  # the old way: load, change, save
            record = job_records.load(home, "automl", "job")
            record.setdefault(key, []).append(i)
            job_records.save(home, "automl", "job", record)
        else:
            job_records.update(home, "automl", "job", lambda r: r.setdefault(key, []).append(i))
    """
)


def _race(home: Path, mode: str, writers: int = 4, rounds: int = 150) -> dict:
    job_records.save(home, "automl", "job", {"AutoMLJobName": "job", "AutoMLJobStatus": "InProgress"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(home), f"writer{n}", str(rounds), mode], cwd=ROOT, env=None
        )
        for n in range(writers)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    return job_records.load(home, "automl", "job")


def test_concurrent_updates_from_several_processes_keep_every_change(tmp_path):
    record = _race(tmp_path, "locked")
    for n in range(4):
        assert record[f"writer{n}"] == list(range(150))  # every round of every writer, in order
    assert record["AutoMLJobStatus"] == "InProgress"  # and what none of them touched
    assert sorted(p.name for p in (tmp_path / "sagemaker" / "automl").iterdir()) == ["job.json", "job.lock"]
    assert len(job_records.load_all(tmp_path, "automl")) == 1  # the lock is not read as a record


def test_a_change_waits_for_the_lock_another_process_holds(tmp_path):
    # the runtime adding the worker's pid while the worker writes TrainingModels: both survive
    job_records.save(tmp_path, "automl", "job", {"AutoMLJobSecondaryStatus": "AnalyzingData"})
    with job_records.locked(tmp_path, "automl", "job"):
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from pipelines.local import job_records; "
                "job_records.update(Path(sys.argv[1]), 'automl', 'job', "
                "lambda r: r.update(AutoMLJobSecondaryStatus='TrainingModels'))",
                str(tmp_path),
            ],
            cwd=ROOT,
        )
        # the runtime's own change, made while it holds the lock: the worker cannot write in between
        record = job_records.load(tmp_path, "automl", "job")
        record["WorkerPid"] = worker.pid
        job_records.save(tmp_path, "automl", "job", record)
    assert worker.wait(timeout=60) == 0
    # both changes are there: the worker's status over the record that already had its pid
    assert job_records.load(tmp_path, "automl", "job") == {
        "AutoMLJobSecondaryStatus": "TrainingModels",
        "WorkerPid": worker.pid,
    }


def test_update_of_a_missing_record_changes_nothing(tmp_path):
    assert job_records.update(tmp_path, "automl", "nope", lambda r: r.update(x=1)) is None
    assert not job_records.record_path(tmp_path, "automl", "nope").exists()
