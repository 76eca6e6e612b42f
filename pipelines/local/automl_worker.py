"""The local AutoML V2 job: the forecasting engine in its own process, as Autopilot runs it.

CreateAutoMLJobV2 (local) writes the job record and calls `launch`; the job then trains in a
child process of the runtime (the host interpreter: the engine needs statsforecast and
LightGBM, which the processing image lacks) and returns at once, InProgress, like AWS. The
worker moves the record through AnalyzingData -> TrainingModels -> Completed | Failed;
StopAutoMLJob calls `stop`, which kills the process group and leaves the job Stopped. The
owner stops every job it launched when it exits (`stop_all`, also registered with atexit),
and a worker whose owner disappears stops itself, so no training outlives the runtime.

    python -m pipelines.local.automl_worker '<settings JSON>' <job name>
    python -m pipelines.local.automl_worker --standby     # started ahead (prestart): the job on stdin
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from pipelines.local.store import list_prefix, local_path, to_uri
from processing.kernel import console
from processing.kernel.process_env import configure_threads
from processing.kernel.processes import exit_when_orphaned, stop_group
from processing.kernel.processes import pid_alive as pid_alive  # the check sagemaker_jobs and tests call here
from processing.kernel.settings import Settings, ensure_home

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENGINE_IMAGE = "forecast-local-engine:latest"  # stands in for Autopilot's inference images
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".parquet.gz")
# leaderboard column -> Autopilot metric name
LEADERBOARD_METRICS = {
    "wQL": "AverageWeightedQuantileLoss",
    "WAPE": "WAPE",
    "MAPE": "MAPE",
    "MASE": "MASE",
    "RMSE": "RMSE",
}
STOP_GRACE_SECONDS = 10
ORPHAN_CHECK_SECONDS = 2.0

Sink = Callable[[str], None]


# --- the owner's side ---------------------------------------------------------------------------
@dataclasses.dataclass
class _Job:
    process: subprocess.Popen
    log_path: Path
    pump: threading.Thread


_JOBS: dict = {}  # (home, job name) -> _Job, for jobs launched by this process
_LOCK = threading.Lock()


def job_log_path(settings: Settings, name: str) -> Path:
    return settings.home_path / "sagemaker" / "automl" / f"{name}.log"


_STANDBY: dict = {}  # home -> (process, environment): a worker started ahead, not yet given a job


def _environment() -> dict:
    return dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )


def _start(argv: list, env: dict, stdin: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.local.automl_worker", *argv],
        cwd=str(PROJECT_ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=stdin,
        start_new_session=True,
        text=True,
        errors="replace",
        bufsize=1,
    )


def prestart(settings: Settings) -> None:
    """Start a worker ahead of the job: its interpreter and the engine's imports (a second or two) run
    while the steps before the AutoML job do; the next `launch` under this home gives it the job. It
    is the process `launch` would start (same interpreter, environment and folder), started earlier."""
    key = str(settings.home_path)
    with _LOCK:
        held = _STANDBY.get(key)
        if held is not None and held[0].poll() is None:
            return
        env = _environment()
        _STANDBY[key] = (_start(["--standby"], env, subprocess.PIPE), env)


def _take_standby(key: str, env: dict) -> Optional[subprocess.Popen]:
    """The home's worker started ahead, when it is still waiting and was started with `env`."""
    with _LOCK:
        held = _STANDBY.pop(key, None)
    if held is None:
        return None
    process, started_with = held
    if process.poll() is None and started_with == env:
        return process
    _discard(process)  # the environment changed since (or it died): a fresh one, as before
    return None


def _discard(process: subprocess.Popen) -> None:
    """End a worker that got no job: without a job line it exits at EOF; killed if it does not."""
    with contextlib.suppress(OSError, ValueError):
        process.stdin.close()  # type: ignore[union-attr]
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        stop_group(process, 1)
    with contextlib.suppress(OSError, ValueError):
        process.stdout.close()  # type: ignore[union-attr]


def discard_standby(settings: Optional[Settings] = None) -> None:
    """End the workers started ahead that got no job (under `settings`' home, or all)."""
    home = str(settings.home_path) if settings is not None else None
    with _LOCK:
        held = [(k, v) for k, v in _STANDBY.items() if home in (None, k)]
        for key, _ in held:
            del _STANDBY[key]
    for _, (process, _) in held:
        _discard(process)


def launch(settings: Settings, name: str, sink: Optional[Sink] = None) -> subprocess.Popen:
    """Start the training process of job `name` (its record must exist); output -> job log + sink.

    A worker started ahead (`prestart`) is given the job when its environment is this one."""
    log_path = job_log_path(settings, name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = _environment()
    job = [json.dumps(dataclasses.asdict(settings)), name]
    process = _take_standby(str(settings.home_path), env)
    if process is not None:
        try:
            process.stdin.write(json.dumps(job) + "\n")  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        except (OSError, ValueError):  # it died meanwhile: start one as usual
            _discard(process)
            process = None
    if process is None:
        process = _start(job, env, subprocess.DEVNULL)

    def pump() -> None:
        assert process.stdout is not None
        with open(log_path, "a", encoding="utf-8") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if sink is not None:
                    with contextlib.suppress(Exception):  # a closed step log must not kill the pump
                        sink(f"[automl job {name}] {line.rstrip()}")

    thread = threading.Thread(target=pump, name=f"automl-{name}", daemon=True)
    thread.start()
    with _LOCK:
        _JOBS[(str(settings.home_path), name)] = _Job(process, log_path, thread)
    return process


def exit_code(settings: Settings, name: str) -> Optional[int]:
    """The training process's exit code once it has ended, None while it runs or when not ours."""
    job = _JOBS.get((str(settings.home_path), name))
    if job is None:
        return None
    code = job.process.poll()
    if code is not None:
        job.pump.join(timeout=5)  # its last lines are in the log before anyone reads the record
    return code


def is_ours(settings: Settings, name: str) -> bool:
    return (str(settings.home_path), name) in _JOBS


def stop(settings: Settings, name: str) -> bool:
    """Kill job `name`'s training process group (SIGTERM, then SIGKILL); True when one was running."""
    job = _JOBS.get((str(settings.home_path), name))
    if job is None or job.process.poll() is not None:
        return False
    _kill(job.process)
    job.pump.join(timeout=5)
    return True


def stop_all(settings: Optional[Settings] = None) -> list:
    """Stop every job this process launched (under `settings`' home) that still trains; their names.
    A worker started ahead that got no job ends too."""
    discard_standby(settings)
    home = str(settings.home_path) if settings is not None else None
    with _LOCK:
        running = [(key, job) for key, job in _JOBS.items() if job.process.poll() is None and home in (None, key[0])]
    for _, job in running:
        _kill(job.process)
    return [key[1] for key, _ in running]


def _kill(process: subprocess.Popen) -> None:
    stop_group(process, STOP_GRACE_SECONDS)


atexit.register(stop_all)


# --- the worker's side ---------------------------------------------------------------------------
def training_data(request: dict, settings: Settings) -> Any:
    """The training channel's file (or the concatenation of its files)."""
    channels = request.get("AutoMLJobInputDataConfig") or []
    training = [c for c in channels if c.get("ChannelType", "training") == "training"]
    if not training:
        raise ValueError("AutoMLJobInputDataConfig has no training channel")
    uri = training[0]["DataSource"]["S3DataSource"]["S3Uri"]
    files = [path for relative, path in list_prefix(uri, settings) if relative.lower().endswith(DATA_SUFFIXES)]
    if not files:
        raise ValueError(f"no training data (csv or parquet) under {uri} (local store: {local_path(uri, settings)})")
    if len(files) == 1:
        return files[0]
    import pandas as pd

    from forecasting import EngineConfig
    from forecasting.data import read_table

    config = EngineConfig.from_automl_request(request)  # ids and grouping columns read as text
    return pd.concat([read_table(f, config) for f in files], ignore_index=True)


def train_job(
    request: dict, record: dict, settings: Settings, save: Callable[[dict], None], now: Callable[[], Any]
) -> dict:
    """Train the engine for `request`; returns the record fields of a completed job."""
    from forecasting import EngineConfig, train

    name = request["AutoMLJobName"]
    data = training_data(request, settings)
    output_uri = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/" + name
    output_dir = local_path(output_uri, settings)
    config = EngineConfig.from_automl_request(request)
    limit = (
        request.get("AutoMLProblemTypeConfig", {}).get("TimeSeriesForecastingJobConfig", {}).get("CompletionCriteria")
        or {}
    ).get("MaxAutoMLJobRuntimeInSeconds")
    record.update(AutoMLJobSecondaryStatus="TrainingModels", LastModifiedTime=now())
    save(record)
    started = time.monotonic()
    source = data if isinstance(data, Path) else "the training files"
    logger.info(f"[local automl] job {name}: training the local forecasting engine on {source}")
    result = train(data, config, output_dir, time_limit_seconds=limit)  # the engine logs
    logger.info(f"[local automl] job {name}: done in {time.monotonic() - started:.1f}s")
    model_uri = to_uri(result.model_dir, settings).rstrip("/") + "/"
    leaderboard_uri = output_uri + "/leaderboard.csv"
    metrics = []
    best_rows = (
        result.leaderboard[result.leaderboard["candidate"] == result.best_candidate_name]
        if "candidate" in result.leaderboard
        else []
    )
    if len(best_rows):
        row = best_rows.iloc[0]
        for column, metric in LEADERBOARD_METRICS.items():
            if column in row and row[column] == row[column]:
                metrics.append(
                    {
                        "MetricName": metric,
                        "Value": float(row[column]),
                        "Set": "Validation",
                        "StandardMetricName": metric,
                    }
                )
    finished = now()
    container = {
        "Image": ENGINE_IMAGE,
        "ModelDataUrl": model_uri,
        "Environment": {
            "FORECAST_ENGINE": "forecasting",
            "FORECAST_CANDIDATE": result.best_candidate_name,
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        },
    }
    return {
        "BestCandidate": {
            "CandidateName": candidate_name(name, result.best_candidate_name),
            "FinalAutoMLJobObjectiveMetric": {
                "Type": "Minimize",
                "MetricName": result.objective_metric,
                "Value": float(result.objective_value),
                "StandardMetricName": result.objective_metric,
            },
            "ObjectiveStatus": "Succeeded",
            "CandidateSteps": [],
            "CandidateStatus": "Completed",
            "InferenceContainers": [container],
            "CreationTime": record["CreationTime"],
            "EndTime": finished,
            "LastModifiedTime": finished,
            "CandidateProperties": {
                "CandidateArtifactLocations": {
                    "Explainability": output_uri + "/",
                    "ModelInsights": leaderboard_uri,
                    "BacktestResults": leaderboard_uri,
                },
                "CandidateMetrics": metrics,
            },
        },
        "EngineCandidate": result.best_candidate_name,
    }


def candidate_name(job_name: str, engine_candidate: str) -> str:
    """Autopilot-like candidate name (pattern-safe) that still says which engine candidate won."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in engine_candidate).strip("-")[:40] or "candidate"
    return f"{job_name[:20]}-{slug}"


def _say_orphaned() -> None:
    """The owner (runtime) is gone: stop training rather than run on unobserved."""
    logger.warning("[local automl] the runtime that owns this job exited: stopping")


def _standby() -> Optional[list]:
    """A worker started ahead: the engine imported, then the job ([settings JSON, name]) read from
    stdin; None when the owner closes stdin without one."""
    try:
        import forecasting  # noqa: F401 - what train_job imports first, done while the owner's steps run
    except Exception:  # noqa: BLE001 - the job imports it again and fails there, with its own error
        pass
    line = sys.stdin.readline()
    if not line.strip():
        return None
    with open(os.devnull) as devnull:  # the job reads nothing from stdin, as a launched worker
        os.dup2(devnull.fileno(), 0)
    return list(json.loads(line))


def main(argv: list) -> int:
    console.setup()
    from pipelines.local import job_records

    configure_threads()  # this process trains the engine (LightGBM, torch): before OpenMP loads
    exit_when_orphaned(ORPHAN_CHECK_SECONDS, 143, _say_orphaned)
    if argv == ["--standby"]:
        job = _standby()
        if job is None:
            return 0
        argv = job
        logger.info(f"[local automl] job {job[1]}: in the worker started ahead (the engine imported meanwhile)")
    settings_json, name = argv
    settings = Settings(**json.loads(settings_json))
    home = ensure_home(settings.home_path)
    record = job_records.load(home, "automl", name)
    if record is None:
        print(f"[local automl] no job record for {name} under {settings.home_path}", flush=True)
        return 2

    def save(r: dict) -> None:
        # merged over the record on disk: the fields the runtime added meanwhile (its pid, ours) stay
        job_records.update(home, "automl", name, lambda current: current.update(r))

    try:
        record.update(train_job(record["request"], record, settings, save, job_records.now))
        record.update(AutoMLJobStatus="Completed", AutoMLJobSecondaryStatus="Completed")
        code = 0
    except Exception as error:  # the job fails; the caller reads FailureReason like on AWS
        print(traceback.format_exc(), flush=True)
        record.update(
            AutoMLJobStatus="Failed",
            AutoMLJobSecondaryStatus="Failed",
            FailureReason=f"{type(error).__name__}: {error}",
        )
        code = 1
    record["EndTime"] = record["LastModifiedTime"] = job_records.now()
    save(record)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
