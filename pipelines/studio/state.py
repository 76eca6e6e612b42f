"""What the Studio shows, read from the local state under FORECAST_HOME.

Executions come from their records (`executions/<id>/execution.json`, written by the local
runtime while it runs), registry versions through the same local SageMaker client and the
same functions `python -m deploy.approve` uses, endpoints from the client's records, the
servers' state files and their `/metrics`. Nothing is cached: every page shows the state
as it is on disk now.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from pipelines.local import report
from processing.kernel import contracts
from processing.kernel.settings import Settings

EXECUTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
KEY_PARAMETERS = {  # shown in the executions list (besides the overrides)
    "training": ("ForecastHorizon", "AutoMLAlgorithms", "QualityMetric", "QualityThreshold"),
    "batch": ("InputDataUrl", "OutputUrl", "ServiceLevel"),
}
LOWER_IS_BETTER = ("wape", "wql", "mape", "mase", "rmse", "mae")
LOG_TAIL_CHARS = 60_000
MAX_VERSIONS = 50  # newest versions shown per group (`python -m deploy.approve list --limit 0`: all)


def executions_root(settings: Settings) -> Path:
    return settings.home_path / "executions"


def load_execution(settings: Settings, execution_id: str) -> Optional[dict]:
    """The record of one execution, or None (ids are checked: no path tricks)."""
    if not EXECUTION_ID.match(execution_id or ""):
        return None
    path = executions_root(settings) / execution_id / "execution.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_executions(settings: Settings) -> list:
    from pipelines.local.runtime import load_executions as runtime_load

    return runtime_load(settings)


def pipeline_kind(record: Mapping[str, Any], settings: Settings) -> str:
    return "batch" if record.get("pipeline_name") == settings.batch_pipeline_name else "training"


def live_steps(record: Mapping[str, Any]) -> list:
    """The record's steps, with the elapsed time of a running step filled in."""
    steps = []
    now = time.time()
    for step in record.get("steps") or []:
        step = dict(step)
        if step.get("status") == "Executing" and step.get("start_time") and step.get("duration_seconds") is None:
            step["duration_seconds"] = round(max(0.0, now - _epoch(step["start_time"])), 1)
        steps.append(step)
    return steps


def elapsed(record: Mapping[str, Any]) -> Optional[float]:
    if record.get("duration_seconds") is not None:
        return record["duration_seconds"]
    if record.get("start_time"):
        return round(max(0.0, time.time() - _epoch(record["start_time"])), 1)
    return None


def _epoch(text: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def key_parameters(record: Mapping[str, Any], settings: Settings) -> dict:
    """The parameters worth a glance: the overrides first, then the pipeline's key ones."""
    parameters = record.get("parameters") or {}
    shown = dict(record.get("overrides") or {})
    for name in KEY_PARAMETERS[pipeline_kind(record, settings)]:
        if name in parameters and name not in shown:
            shown[name] = parameters[name]
    return shown


def gate_outcome(record: Mapping[str, Any], settings: Settings) -> Optional[dict]:
    """{metric, value, threshold, passed} of the quality gate, when the execution evaluated one."""
    evaluation, _ = report.property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    gate = (evaluation or {}).get("quality_gate") if isinstance(evaluation, Mapping) else None
    if isinstance(gate, Mapping) and gate:
        return dict(gate)
    for step in record.get("steps") or []:
        if step.get("type") == "Condition" and isinstance((step.get("outputs") or {}).get("Outcome"), bool):
            return {"metric": None, "value": None, "threshold": None, "passed": step["outputs"]["Outcome"]}
    return None


def step_log(record: Mapping[str, Any], name: str) -> Optional[str]:
    """The end of a step's log (the whole log when it is short)."""
    step = next((s for s in record.get("steps") or [] if s.get("name") == name), None)
    if not step or not step.get("log"):
        return None
    path = Path(step["log"])
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_CHARS))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    return text if size <= LOG_TAIL_CHARS else "... (earlier lines in " + str(path) + ")\n" + text


def property_files(record: Mapping[str, Any], step: Mapping[str, Any], settings: Settings) -> list:
    """[(name, uri, text)] of the step's property files (pretty JSON when it parses)."""
    from pipelines.local.store import local_path

    found = []
    for name, uri in (step.get("property_files") or {}).items():
        try:
            path = local_path(uri, settings)
            text = path.read_text()
            try:
                text = json.dumps(json.loads(text), indent=2)
            except json.JSONDecodeError:
                pass
        except (OSError, ValueError) as error:
            text = f"(not readable: {error})"
        found.append((name, uri, text))
    return found


def output_location(uri: Any, settings: Settings) -> Optional[Path]:
    from pipelines.local.store import local_path

    text = str(uri)
    try:
        if text.startswith("s3://"):
            return local_path(text, settings)
        if text.startswith("file://"):
            return Path(text[len("file://") :])
        return Path(text).expanduser().resolve() if text and not text.startswith(("http:", "https:")) else None
    except (OSError, ValueError):
        return None


def planner_report_dir(record: Mapping[str, Any], settings: Settings) -> Optional[Path]:
    """The folder with the batch run's report.html (the Report step's output), when it exists."""
    path = report.planner_report_path(record, settings)
    return path.parent if path is not None else None


def contained_file(root: Path, relative: str) -> Optional[Path]:
    """root/relative when it is a file inside root (no '..' or symlink escapes), else None."""
    try:
        base = root.resolve()
        target = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    if base not in target.parents or not target.is_file():
        return None
    return target


# --- registry ------------------------------------------------------------------------------
def sagemaker_client(settings: Settings) -> Any:
    from pipelines.local.sagemaker import LocalSageMakerClient

    return LocalSageMakerClient(settings)


def registry_groups(settings: Settings) -> list:
    """[{name, versions: [...], champion}] for every model package group, newest version first."""
    from deploy import approve
    from pipelines.local.registry import DATABASE_FILE

    if not (settings.home_path / DATABASE_FILE).is_file():
        return []  # reading must not create a registry (nor the home teardown --include-data removed)

    sm = sagemaker_client(settings)
    names = [
        g["ModelPackageGroupName"]
        for g in sm.list_model_package_groups(MaxResults=100).get("ModelPackageGroupSummaryList", [])
    ]
    deployed = approve.deployed_package(sm, settings.endpoint_name)
    groups = []
    for name in names:
        versions = approve.list_versions(sm, name, deployed, limit=MAX_VERSIONS)
        for row in versions:
            package = sm.describe_model_package(ModelPackageName=row["arn"])
            row["metadata"] = dict(package.get("CustomerMetadataProperties") or {})
        champion = next((v for v in versions if v["deployed"]), None) or next(
            (v for v in versions if v["status"] == "Approved"), None
        )
        for row in versions:
            row["comparison"] = champion_comparison(row, champion)
            row["comparison_basis"] = comparison_basis(row)
        groups.append({"name": name, "versions": versions, "champion": champion})
    return groups


def metric_number(text: Any) -> Optional[float]:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def champion_comparison(row: Mapping[str, Any], champion: Optional[Mapping[str, Any]]) -> dict:
    """{metric: (this, champion's, better?)}. When registration recorded the ChampionGate's
    comparison (`champion_status` compared: both models scored on this version's holdout), that
    one, for the gate's metric only: it is the like-for-like one. Else against the champion in
    the registry (the version serving, else the newest Approved) on the registration metrics,
    which each version measured on its own holdout (`comparison_basis` says which it is)."""
    recorded = recorded_champion(row)
    if recorded:
        key, mine, theirs = recorded["key"], recorded["challenger_value"], recorded["champion_value"]
        return {key: (mine, theirs, mine < theirs if mine != theirs else None)}
    if champion is None or champion.get("arn") == row.get("arn"):
        return {}
    theirs = {k[len("metric_") :]: v for k, v in (champion.get("metrics") or {}).items() if k.startswith("metric_")}
    comparison = {}
    for name, value in theirs.items():
        mine, other = metric_number((row.get("metrics") or {}).get(f"metric_{name}")), metric_number(value)
        if mine is None or other is None or name not in LOWER_IS_BETTER:
            continue
        comparison[name] = (mine, other, mine < other if mine != other else None)
    return comparison


def recorded_champion(row: Mapping[str, Any]) -> Optional[dict]:
    """The ChampionGate comparison RegisterModel stored with the version (processing.register's
    champion_metadata): {key, version, challenger_value, champion_value}, or None."""
    metadata = row.get("metadata") or {}
    if metadata.get("champion_status") != "compared":
        return None
    key = str(metadata.get("quality_gate_metric") or "").lower()
    mine = metric_number(metadata.get("champion_challenger_value"))
    theirs = metric_number(metadata.get("champion_value"))
    if key not in LOWER_IS_BETTER or mine is None or theirs is None:
        return None
    return {"key": key, "version": metadata.get("champion_version"), "challenger_value": mine, "champion_value": theirs}


def comparison_basis(row: Mapping[str, Any]) -> str:
    """`same holdout` (the ChampionGate's comparison) or `registration` (each version's own holdout)."""
    return "same holdout" if recorded_champion(row) else "registration"


# --- endpoints -----------------------------------------------------------------------------
def endpoints(settings: Settings) -> list:
    """Every local endpoint: status, model version, URL, requests and latency (from /metrics)."""
    from deploy import endpoint as server

    home = settings.home_path
    if not home.is_dir():
        return []  # the local SageMaker client would create the home to answer ListEndpoints
    sm = sagemaker_client(settings)
    rows: dict = {}
    for summary in sm.list_endpoints(MaxResults=100).get("Endpoints", []):
        name = summary["EndpointName"]
        described = sm.describe_endpoint(EndpointName=name)
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=described["EndpointArn"]).get("Tags", [])}
        rows[name] = {
            "name": name,
            "status": described["EndpointStatus"],
            "config": described.get("EndpointConfigName"),
            "failure_reason": described.get("FailureReason"),
            "model_package_arn": tags.get("model-package-arn"),
            "model_version": tags.get("model-package-version"),
            "modified": str(described.get("LastModifiedTime") or "")[:19].replace("T", " "),
        }
    folder = server.endpoints_dir(home)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rows.setdefault(
            path.stem,
            {
                "name": path.stem,
                "status": None,
                "config": None,
                "failure_reason": None,
                "model_package_arn": None,
                "model_version": None,
                "modified": "",
            },
        )
    for row in rows.values():
        state = server.running_state(home, row["name"])
        row["url"] = state.get("url") if state else None
        row["metrics"] = None
        if state:
            try:
                status, _, body = server.http_request(state["url"] + "/metrics", timeout=2)
                row["metrics"] = json.loads(body) if status == 200 else None
            except (OSError, ValueError):
                row["metrics"] = None
        if row["status"] is None:
            row["status"] = "InService" if row["metrics"] else "OutOfService"
        if row["metrics"] and not row["model_package_arn"]:
            row["model_package_arn"] = row["metrics"].get("model_package_arn")
        if row["model_package_arn"] and not row["model_version"]:
            row["model_version"] = str(row["model_package_arn"]).rsplit("/", 1)[-1]
    return sorted(rows.values(), key=lambda r: r["name"])
