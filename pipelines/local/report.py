"""What the user sees after a local execution: the console summary and the HTML report.

The HTML report is the local counterpart of viewing a run in SageMaker Studio: the
pipeline graph coloured by status, step timings, parameters, evaluation metrics and the
evaluation plots (embedded, so the file can be mailed around).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional

from pipelines.local import graph_layout
from processing.kernel import contracts
from processing.kernel.metric_format import SUMMARY_HIDDEN, format_metric, metric_label
from processing.kernel.settings import Settings

STATUS_COLOURS = graph_layout.STATUS_COLOURS
NEXT_COMMANDS = ("python -m deploy.approve approve --latest", "python -m pipelines.run --pipeline batch")
STUDIO_COMMAND = "python -m pipelines.studio"


format_duration = graph_layout.format_duration


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _skill(value: Any) -> str:
    """A skill (1 - model/baseline) is a ratio, whatever metric it compares: two decimals."""
    return format_metric("skill", value)


def property_file_document(record: Mapping[str, Any], name: str, settings: Settings) -> tuple:
    """(parsed JSON, local path) of the property file `name` written in this execution, or (None, None)."""
    from pipelines.local.store import local_path

    for step in record.get("steps") or []:
        uri = (step.get("property_files") or {}).get(name)
        if uri and step.get("status") == "Succeeded":
            path = local_path(uri, settings)
            if path.is_file():
                try:
                    return json.loads(path.read_text()), path
                except json.JSONDecodeError:
                    return None, path
    return None, None


def metric_value(value: Any) -> Optional[float]:
    """A metric as a number: evaluation.json stores {"value": x} (SageMaker model-quality style)."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _metric_items(values: Any) -> list:
    if not isinstance(values, Mapping):
        return []
    return [(k, metric_value(v)) for k, v in values.items() if metric_value(v) is not None and k not in SUMMARY_HIDDEN]


def evaluation_lines(evaluation: Mapping[str, Any], leaderboard: Optional[Mapping[str, Any]] = None) -> list:
    lines = []
    gate = evaluation.get("quality_gate") or {}
    if gate:
        verdict = "passed" if gate.get("passed") else "failed"
        lines.append(
            f"  quality gate: {gate.get('metric')} = {(format_metric(gate.get('metric'), gate.get('value')) if gate.get('defined', True) else 'undefined')} "
            f"(threshold {format_metric(gate.get('metric'), gate.get('threshold'))}) -> {verdict}"
        )
    metrics = _metric_items(evaluation.get("forecast_metrics"))
    if metrics:
        lines.append("  forecast metrics: " + ", ".join(f"{metric_label(k)} {format_metric(k, v)}" for k, v in metrics))
    baseline = evaluation.get("baseline") or {}
    base_metrics = dict(_metric_items(baseline.get("forecast_metrics") if isinstance(baseline, Mapping) else None))
    if base_metrics:
        shown = [f"{metric_label(k)} {format_metric(k, base_metrics[k])}" for k, _ in metrics if k in base_metrics]
        lines.append(f"  baseline ({baseline.get('method', 'seasonal naive')}): " + ", ".join(shown))
    skill = _metric_items(evaluation.get("skill"))
    if skill:
        lines.append(
            "  skill vs baseline (1 - model/baseline): " + ", ".join(f"{metric_label(k)} {_skill(v)}" for k, v in skill)
        )
    explained = mase_explanation(
        dict(metrics), base_metrics, dict(skill), metric_value((leaderboard or {}).get("MASE"))
    )
    if explained:
        lines.append("  " + explained)
    lines.extend(champion_lines(evaluation))
    for warning in evaluation.get("warnings") or []:
        lines.append(f"  note: {warning}")
    return lines


def mase_explanation(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    skill: Mapping[str, float],
    leaderboard_mase: Optional[float] = None,
) -> Optional[str]:
    """Why MASE here, MASE on the AutoML leaderboard and the MASE skill can all look different."""
    if "mase" not in metrics:
        return None
    lines = [
        f"MASE {format_metric('mase', metrics['mase'])} = each item's holdout MAE / its in-sample seasonal-naive MAE "
        "on the training history, averaged (1 = as large as that in-sample error)"
    ]
    if "mase" in baseline:
        line = f"  seasonal naive scores {format_metric('mase', baseline['mase'])} on the same holdout"
        if "mase" in skill:
            line += (
                f": skill {_skill(skill['mase'])} = {abs(skill['mase']):.0%} "
                f"{'less' if skill['mase'] >= 0 else 'more'} error than seasonal naive"
            )
        lines.append(line)
    board = (
        f" ({format_metric('mase', leaderboard_mase)} for the chosen candidate)" if leaderboard_mase is not None else ""
    )
    lines.append(
        f"  the AutoML leaderboard's MASE{board} is the same formula on its backtest windows inside the "
        "training data (earlier periods), not on this holdout (docs/metrics.md)"
    )
    return "\n  ".join(lines)


def planner_report_path(record: Mapping[str, Any], settings: Settings) -> Optional[Path]:
    """The batch run's report.html (the Report step's output: OutputUrl), when it was written."""
    from pipelines.local.store import local_path

    for step in record.get("steps") or []:
        if step.get("name") != contracts.STEP_REPORT or step.get("status") != "Succeeded":
            continue
        for uri in (step.get("outputs") or {}).values():
            text = str(uri)
            try:
                folder = (
                    local_path(text, settings)
                    if text.startswith("s3://")
                    else Path(text[len("file://") :] if text.startswith("file://") else text).expanduser().resolve()
                )
            except ValueError:
                continue
            if (folder / "report.html").is_file():
                return folder / "report.html"
    return None


def champion_lines(evaluation: Mapping[str, Any]) -> list:
    """Champion versus challenger side by side (issue 15), when a champion was compared."""
    champion = evaluation.get("champion")
    if not isinstance(champion, Mapping) or champion.get("status") != "compared":
        return []
    metric = champion.get("metric")
    mine, theirs_value = metric_value(champion.get("challenger_value")), metric_value(champion.get("champion_value"))
    if not champion.get("passed"):
        verdict = "champion stays (challenger not registered)"
    elif mine is not None and theirs_value is not None and mine > theirs_value:
        # worse than the champion but not beyond the limit: registered, and the user should know it is worse
        verdict = (
            f"challenger passes within tolerance ({format_metric(metric, mine)} is worse than the champion's "
            f"{format_metric(metric, theirs_value)}, within the limit {format_metric(metric, champion.get('limit'))})"
        )
    else:
        verdict = "challenger wins"

    def shown(field: str, value: Any) -> str:
        """Evaluate's *_shown text (as ChallengerLost's message has it: decimals enough to tell a
        losing challenger from the limit), else the value in the metric format."""
        text = champion.get(f"{field}_shown")
        return text if isinstance(text, str) and text else format_metric(metric, value)

    lines = [
        f"  champion (version {champion.get('version')}) vs challenger on the same holdout: "
        f"{metric} {shown('champion', champion.get('champion_value'))} vs "
        f"{shown('challenger', champion.get('challenger_value'))}, "
        f"limit {shown('limit', champion.get('limit'))} "
        f"(tolerance {_fmt_value(champion.get('tolerance'))}) -> {verdict}"
    ]
    theirs, ours = champion.get("champion_metrics") or {}, champion.get("challenger_metrics") or {}
    shared = [k for k in ours if metric_value(ours.get(k)) is not None and metric_value(theirs.get(k)) is not None]
    if shared:
        lines.append(f"    {'metric'.ljust(8)}  {'champion'.rjust(10)}  {'challenger'.rjust(10)}")
        lines += [
            f"    {metric_label(k).ljust(8)}  {format_metric(k, metric_value(theirs[k])).rjust(10)}  "
            f"{format_metric(k, metric_value(ours[k])).rjust(10)}"
            for k in shared
        ]
    return lines


def registration_info(record: Mapping[str, Any], settings: Settings) -> Optional[dict]:
    document, _ = property_file_document(record, contracts.REGISTRATION_RESULT_NAME, settings)
    if not isinstance(document, Mapping) or not document.get(contracts.MODEL_PACKAGE_ARN_PATH):
        return None
    arn = document[contracts.MODEL_PACKAGE_ARN_PATH]
    status = document.get("approval_status") or document.get("ModelApprovalStatus")
    try:
        from pipelines.local.sagemaker import LocalSageMakerClient

        status = LocalSageMakerClient(settings).describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    except Exception:  # registry unavailable: fall back to what the step wrote
        pass
    return {"arn": arn, "status": status or "unknown"}


def execution_summary(record: Mapping[str, Any], settings: Settings) -> str:
    steps = record.get("steps") or []
    attempt = int(record.get("attempt") or 1)
    lines = [
        "",
        f"Execution {record.get('execution_id')} of {record.get('pipeline_name')}: "
        f"{record.get('status')} in {format_duration(record.get('duration_seconds'))}"
        + (f" (attempt {attempt})" if attempt > 1 else ""),
    ]
    width = max([len(s["name"]) for s in steps] + [4])
    lines.append(
        f"  {'STEP'.ljust(width)}  {'TYPE'.ljust(10)}  {'STATUS'.ljust(11)}  {'DURATION'.ljust(8)}  ENVIRONMENT"
    )
    for step in steps:
        environment = (step.get("environment") or {}).get("label", "")
        hit = step.get("CacheHitResult")
        if hit:  # not run: its outputs come from an earlier execution, or an earlier attempt of this one
            environment = f"cache hit (outputs of {str(hit.get('SourcePipelineExecutionArn')).rsplit('/', 1)[-1]})"
        elif step.get("reused"):
            environment = f"reused from attempt {step.get('attempt') or 1}"
        lines.append(
            (
                f"  {step['name'].ljust(width)}  {step['type'].ljust(10)}  {step['status'].ljust(11)}  "
                f"{format_duration(step.get('duration_seconds')).ljust(8)}  {environment}"
            ).rstrip()
        )
    if record.get("failure_reason"):
        lines.append(f"\nFailure: {record['failure_reason']}")
        lines.extend(rerun_advice(record, settings))
    evaluation, path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if isinstance(evaluation, Mapping):
        automl, _ = property_file_document(record, contracts.AUTOML_RESULT_NAME, settings)
        candidate = (automl or {}).get("candidate_metrics") if isinstance(automl, Mapping) else None
        lines.append(f"\nEvaluation ({path}):")
        lines.extend(evaluation_lines(evaluation, candidate if isinstance(candidate, Mapping) else None))
    registration = registration_info(record, settings)
    if registration:
        lines.append(f"\nRegistered model package: {registration['arn']}\n  approval status: {registration['status']}")
    if not registration and record.get("status") == "Succeeded":
        from pipelines.local.store import local_path

        last = next((st for st in reversed(steps) if st.get("status") == "Succeeded" and st.get("outputs")), None)
        if last:
            lines.append(f"\nOutputs of {last['name']}:")
            for name, uri in last["outputs"].items():
                where = f" ({local_path(uri, settings)})" if str(uri).startswith("s3://") else ""
                lines.append(f"  {name}: {uri}{where}")
    report = record.get("report")
    if report:
        lines.append(f"\nReport: {report}")
    planner = planner_report_path(record, settings)
    if planner is not None:
        lines.append(f"Planner report: {planner}\n  (forecasts.csv, inventory.csv, summary.json and charts/ beside it)")
    browse = (STUDIO_COMMAND, "browse runs, approve versions, endpoints")
    following: list = []
    if record.get("status") == "Succeeded" and registration:
        if registration["status"] != "Approved":
            following.append((NEXT_COMMANDS[0], "approve the new version (deploys it to the local endpoint)"))
        following += [(NEXT_COMMANDS[1], "forecast every item with the latest approved model"), browse]
    elif record.get("status") == "Succeeded" and planner is not None:
        following += [
            (f"open {planner}", "the planner report: forecasts, order-up-to levels, movers"),
            ("python -m deploy.api invoke --item-id <item> --horizon 7", "one item's forecast, real time"),
            browse,
        ]
    if following:
        width = max(len(command) for command, _ in following)
        lines.append("\nNext:")
        lines.extend(f"  {command.ljust(width)}   # {why}" for command, why in following)
    return "\n".join(lines)


def failed_by_fail_step(record: Mapping[str, Any]) -> Optional[str]:
    """The Fail step that stopped the execution (ChallengerLost, QualityTooLow), or None. Its
    condition was decided by the data and the parameters, so --retry, which reuses both, fails again."""
    for step in record.get("steps") or []:
        if step.get("type") == "Fail" and step.get("status") == "Failed":
            return str(step.get("name"))
    return None


def rerun_advice(record: Mapping[str, Any], settings: Settings) -> list:
    """What to run after a failure: after ChallengerLost, newer data or a ChallengerTolerance."""
    if failed_by_fail_step(record) == contracts.STEP_CHALLENGER_LOST:
        needed = needed_tolerance(record, settings)
        value = "<x>" if needed is None else needed
        why = "x = 0.2: up to 20% worse than the champion" if needed is None else "the least that registers it"
        return [
            "The champion forecasts this holdout better; --retry would fail the same way. Start a new execution:",
            "  on newer data:         " + rerun_command(record, settings, {"InputDataUrl": "<newer data>"}),
            "  or accept a worse one: "
            + rerun_command(record, settings, {"ChallengerTolerance": value})
            + f"   # {why}",
        ]
    if failed_by_fail_step(record) == contracts.STEP_FAIL:
        return quality_advice(record, settings)
    return ["To run again after fixing it (a new execution): " + rerun_command(record, settings)]


def quality_advice(record: Mapping[str, Any], settings: Settings) -> list:
    """After QualityTooLow: the gate was decided by the data and the parameters, so the choices are
    other data, or a threshold (or metric) this model meets, with the values that register it."""
    evaluation, _ = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    evaluation = evaluation if isinstance(evaluation, Mapping) else {}
    gate = evaluation.get("quality_gate") or {}
    metric = str(gate.get("metric") or "<metric>")
    lines = [
        "The quality gate decides on the data and the parameters; --retry would fail the same way. "
        "Start a new execution:",
        "  on other data:           " + rerun_command(record, settings, {"InputDataUrl": "<data>"}),
    ]
    needed = _rounded_up(metric_value(gate.get("value")) if gate.get("defined", True) else None)
    lines.append(
        "  or accept this quality:  "
        + rerun_command(record, settings, {"QualityThreshold": needed or "<x>"})
        + (f"   # the least that registers it ({metric} {format_metric(metric, gate.get('value'))})" if needed else "")
    )
    wql = metric_value((evaluation.get("forecast_metrics") or {}).get("wql"))
    if metric.upper() != "WQL" and _rounded_up(wql):
        lines.append(
            "  or gate on wQL:          "
            + rerun_command(record, settings, {"QualityMetric": "WQL", "QualityThreshold": _rounded_up(wql) or "<x>"})
            + f"   # this run's wQL {format_metric('wql', wql)}; "
            "point metrics (WAPE, MAPE) run high on slow or intermittent items"
        )
    return lines


def _rounded_up(value: Optional[float]) -> Optional[str]:
    """A threshold (two decimals, rounded up) that `value` meets; None for no finite value."""
    if value is None or not math.isfinite(value) or value >= contracts.QUALITY_GATE_UNDEFINED_VALUE:
        return None
    return f"{math.ceil(round(value * 100, 6)) / 100:.2f}"


def needed_tolerance(record: Mapping[str, Any], settings: Settings) -> Optional[str]:
    """The smallest ChallengerTolerance (two decimals, rounded up) that lets this challenger register."""
    evaluation, _ = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    champion = evaluation.get("champion") if isinstance(evaluation, Mapping) else None
    if not isinstance(champion, Mapping) or champion.get("status") != "compared":
        return None
    mine, theirs = metric_value(champion.get("challenger_value")), metric_value(champion.get("champion_value"))
    if mine is None or not theirs or theirs <= 0:
        return None
    return _rounded_up(mine / theirs - 1)


def rerun_command(record: Mapping[str, Any], settings: Settings, changes: Optional[Mapping[str, str]] = None) -> str:
    """The command that starts this execution again with the same parameter overrides (and `changes`)."""
    import shlex

    parts = ["python", "-m", "pipelines.run"]
    if record.get("pipeline_name") == settings.batch_pipeline_name:
        parts += ["--pipeline", "batch"]
    for name, value in {**(record.get("overrides") or {}), **(changes or {})}.items():
        parts += ["--param", f"{name}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


# --- HTML ------------------------------------------------------------------------------------
def graph_svg(steps: list, branch_of: Optional[Mapping[str, tuple]] = None) -> str:
    """The pipeline graph (pipelines.local.graph_layout, shared with the Studio)."""
    return graph_layout.graph_svg(steps, branch_of)


def _table(rows: list, header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plots(record: Mapping[str, Any], settings: Settings) -> list:
    """Every PNG written by the evaluation step (its output folder's plots)."""
    _, path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if path is None:
        return []
    return sorted(path.parent.rglob("*.png"))


def branch_map(record: Mapping[str, Any], graph: Any = None) -> dict:
    """{step: (condition, IfSteps|ElseSteps)} from the loaded graph, else the recorded definition."""
    steps = getattr(graph, "steps", None)
    if isinstance(steps, Mapping):
        return {name: (spec.condition, spec.branch) for name, spec in steps.items() if getattr(spec, "condition", None)}
    definition = record.get("definition")
    if definition and Path(definition).is_file():
        try:
            return graph_layout.branches(json.loads(Path(definition).read_text()))
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


# Plots open full size in an overlay (a click, or Enter); Escape or a click closes it.
LIGHTBOX_CSS = (
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}"
    ".plots figure{margin:0;border:1px solid #e3e3e3;border-radius:6px;padding:6px;background:#fff}"
    ".plots img{width:100%;height:auto;cursor:zoom-in;display:block}"
    ".plots figcaption{font-size:12px;color:#555;margin-top:4px}"
    "#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.82);display:none;z-index:10;"
    "overflow:auto;cursor:zoom-out;padding:24px;box-sizing:border-box}"
    "#lightbox.open{display:block}#lightbox img{display:block;margin:0 auto;max-width:none;"
    "background:#fff}#lightbox p{color:#eee;text-align:center;font-size:13px;margin:6px}"
)
LIGHTBOX_HTML = "<div id='lightbox' role='dialog' aria-label='plot, full size'><p></p><img alt=''></div>"
LIGHTBOX_JS = (
    "<script>(function(){var box=document.getElementById('lightbox');if(!box)return;"
    "var big=box.querySelector('img'),cap=box.querySelector('p');"
    "function open(img){big.src=img.dataset.full||img.src;big.alt=img.alt;"
    "cap.textContent=img.alt+' (full size; Escape or click to close)';box.classList.add('open');}"
    "document.querySelectorAll('.plots img').forEach(function(img){img.tabIndex=0;"
    "img.addEventListener('click',function(){open(img);});"
    "img.addEventListener('keydown',function(e){if(e.key==='Enter')open(img);});});"
    "box.addEventListener('click',function(){box.classList.remove('open');});"
    "document.addEventListener('keydown',function(e){if(e.key==='Escape')box.classList.remove('open');});"
    "})();</script>"
)


def write_report(record: Mapping[str, Any], graph: Any, settings: Settings, path: Path) -> Path:
    from pipelines.local.store import atomic_write_bytes

    atomic_write_bytes(path, render_report(record, graph, settings).encode("utf-8"))
    return path


def render_report(record: Mapping[str, Any], graph: Any, settings: Settings) -> str:
    """The execution report as one self-contained HTML page (plots embedded)."""
    steps = record.get("steps") or []
    longest = max([s.get("duration_seconds") or 0 for s in steps] + [1])
    timing_rows = []
    for step in steps:
        seconds = step.get("duration_seconds")
        bar = (
            f'<div class="bar" style="width:{max(1, int(300 * (seconds or 0) / longest))}px;'
            f'background:{STATUS_COLOURS.get(step["status"], "#757575")}"></div>'
        )
        log = step.get("log")
        log_link = f'<a href="{html.escape(Path(log).as_uri())}">log</a>' if log else ""
        detail = html.escape(step.get("failure_reason") or step.get("note") or "")
        timing_rows.append(
            (
                html.escape(step["name"]),
                html.escape(step["type"]),
                f'<span style="color:{STATUS_COLOURS.get(step["status"], "#757575")}">'
                f"{html.escape(step['status'])}</span>",
                format_duration(seconds),
                bar,
                log_link,
                html.escape((step.get("environment") or {}).get("label", "")),
                detail,
            )
        )
    sections = [
        f"<h1>{html.escape(str(record.get('pipeline_name')))} · execution "
        f"{html.escape(str(record.get('execution_id')))}</h1>",
        f"<p>Status <b style='color:{STATUS_COLOURS.get(record.get('status'), '#333')}'>"
        f"{html.escape(str(record.get('status')))}</b>, started {html.escape(str(record.get('start_time')))}, "
        f"duration {format_duration(record.get('duration_seconds'))}. Target: local runtime.</p>",
    ]
    if record.get("failure_reason"):
        sections.append(f"<p class='failure'>{html.escape(record['failure_reason'])}</p>")
    for note in record.get("notes") or []:
        sections.append(f"<p class='note'>{html.escape(note)}</p>")
    sections += [
        "<h2>Pipeline graph</h2>",
        f"<div class='graph'>{graph_svg(steps, branch_map(record, graph))}</div>",
        "<h2>Steps</h2>",
        _table(timing_rows, ("Step", "Type", "Status", "Duration", "", "Log", "Environment", "Detail")),
    ]
    evaluation, eval_path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if isinstance(evaluation, Mapping):
        sections.append("<h2>Evaluation</h2>")
        gate = evaluation.get("quality_gate") or {}
        if gate:
            sections.append(
                f"<p>Quality gate: {html.escape(str(gate.get('metric')))} = "
                f"{(format_metric(gate.get('metric'), gate.get('value')) if gate.get('defined', True) else 'undefined')}, "
                f"threshold {format_metric(gate.get('metric'), gate.get('threshold'))}: "
                f"<b>{'passed' if gate.get('passed') else 'failed'}</b></p>"
            )
        model_metrics = _metric_items(evaluation.get("forecast_metrics"))
        baseline = evaluation.get("baseline") if isinstance(evaluation.get("baseline"), Mapping) else {}
        base_metrics = dict(_metric_items(baseline.get("forecast_metrics")))
        skill = dict(_metric_items(evaluation.get("skill")))
        rows = [
            (
                html.escape(metric_label(k)),
                format_metric(k, v),
                format_metric(k, base_metrics.get(k)),
                _skill(skill.get(k)),
            )
            for k, v in model_metrics
        ]
        if rows:
            sections.append(
                _table(
                    rows, ("metric", "model", f"baseline ({baseline.get('method', '-')})", "skill (1 - model/baseline)")
                )
            )
        champion = champion_lines(evaluation)
        if champion:
            sections.append("<h3>Champion versus challenger</h3><pre>" + html.escape("\n".join(champion)) + "</pre>")
        for warning in evaluation.get("warnings") or []:
            sections.append(f"<p class='note'>{html.escape(str(warning))}</p>")
        sections.append(f"<p class='small'>{html.escape(str(eval_path))}</p>")
    planner = planner_report_path(record, settings)
    if planner is not None:
        sections.append(
            f"<h2>Planner report</h2><p><a href='{html.escape(planner.as_uri())}'>"
            f"{html.escape(str(planner))}</a>: forecasts, inventory order-up-to levels, movers, charts "
            f"(forecasts.csv, inventory.csv, summary.json beside it)</p>"
        )
    registration = registration_info(record, settings)
    if registration:
        sections.append(
            f"<h2>Model registry</h2><p>{html.escape(registration['arn'])}: "
            f"<b>{html.escape(str(registration['status']))}</b></p>"
        )
    images = plots(record, settings)
    if images:
        sections.append(
            "<h2>Evaluation plots</h2><p class='small'>Click a plot to see it full size.</p><div class='plots'>"
        )
        for plot in images:
            data = base64.b64encode(plot.read_bytes()).decode("ascii")
            sections.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(plot.name)}'>"
                f"<figcaption>{html.escape(plot.name)} · <a href='{html.escape(plot.as_uri())}'>"
                f"file</a></figcaption></figure>"
            )
        sections.append("</div>" + LIGHTBOX_HTML)
    parameter_rows = [(html.escape(k), html.escape(str(v))) for k, v in (record.get("parameters") or {}).items()]
    sections += ["<h2>Parameters</h2>", _table(parameter_rows, ("name", "value"))]
    output_rows = []
    for step in steps:
        for name, uri in (step.get("outputs") or {}).items():
            output_rows.append((html.escape(step["name"]), html.escape(str(name)), html.escape(str(uri))))
    if output_rows:
        sections += ["<h2>Outputs</h2>", _table(output_rows, ("step", "output", "location"))]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px;overflow-wrap:anywhere}"
        ".bar{height:10px}.failure{color:#c62828;font-weight:bold}.note{color:#555}"
        ".graph{overflow-x:auto}.small{color:#777;font-size:12px}" + LIGHTBOX_CSS
    )
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(str(record.get('execution_id')))}"
        f"</title><style>{style}</style></head><body>{''.join(sections)}{LIGHTBOX_JS}</body></html>"
    )
    return document
