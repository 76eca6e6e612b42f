"""What the user sees after a local execution: the console summary and the HTML report.

The HTML report is the local counterpart of viewing a run in SageMaker Studio: the
pipeline graph coloured by status, step timings, parameters, evaluation metrics and the
evaluation plots (embedded, so the file can be mailed around).
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from pipelines import contracts
from pipelines.settings import Settings

STATUS_COLOURS = {"Succeeded": "#2e7d32", "Failed": "#c62828", "Stopped": "#ef6c00", "Executing": "#1565c0",
                  "NotExecuted": "#9e9e9e", "Pending": "#bdbdbd"}
NEXT_COMMANDS = ("python -m deploy.approve approve --latest", "python -m pipelines.run --pipeline batch")
MAX_PLOTS = 12


def format_duration(seconds: Optional[float]) -> str:
    """1.2s, 4m05s: how long steps took, for people."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
    return [(k, metric_value(v)) for k, v in values.items() if metric_value(v) is not None]


def evaluation_lines(evaluation: Mapping[str, Any]) -> list:
    lines = []
    gate = evaluation.get("quality_gate") or {}
    if gate:
        verdict = "passed" if gate.get("passed") else "failed"
        lines.append(f"  quality gate: {gate.get('metric')} = {_fmt_value(gate.get('value'))} "
                     f"(threshold {_fmt_value(gate.get('threshold'))}) -> {verdict}")
    metrics = _metric_items(evaluation.get("forecast_metrics"))
    if metrics:
        lines.append("  forecast metrics: " + ", ".join(f"{k} {_fmt_value(v)}" for k, v in metrics))
    baseline = evaluation.get("baseline") or {}
    base_metrics = dict(_metric_items(baseline.get("forecast_metrics") if isinstance(baseline, Mapping) else None))
    if base_metrics:
        shown = [f"{k} {_fmt_value(base_metrics[k])}" for k, _ in metrics if k in base_metrics]
        lines.append(f"  baseline ({baseline.get('method', 'seasonal naive')}): " + ", ".join(shown))
    skill = _metric_items(evaluation.get("skill"))
    if skill:
        lines.append("  skill vs baseline (1 - model/baseline): " + ", ".join(f"{k} {_fmt_value(v)}" for k, v in skill))
    lines.extend(champion_lines(evaluation))
    for warning in evaluation.get("warnings") or []:
        lines.append(f"  note: {warning}")
    return lines


def champion_lines(evaluation: Mapping[str, Any]) -> list:
    """Champion versus challenger side by side (issue 15), when a champion was compared."""
    champion = evaluation.get("champion")
    if not isinstance(champion, Mapping) or champion.get("status") != "compared":
        return []
    verdict = "challenger wins" if champion.get("passed") else "champion stays (challenger not registered)"
    lines = [f"  champion (version {champion.get('version')}) vs challenger on the same holdout: "
             f"{champion.get('metric')} {_fmt_value(champion.get('champion_value'))} vs "
             f"{_fmt_value(champion.get('challenger_value'))}, limit {_fmt_value(champion.get('limit'))} "
             f"(tolerance {_fmt_value(champion.get('tolerance'))}) -> {verdict}"]
    theirs, ours = champion.get("champion_metrics") or {}, champion.get("challenger_metrics") or {}
    shared = [k for k in ours if metric_value(ours.get(k)) is not None and metric_value(theirs.get(k)) is not None]
    if shared:
        lines.append(f"    {'metric'.ljust(8)}  {'champion'.rjust(10)}  {'challenger'.rjust(10)}")
        lines += [f"    {k.ljust(8)}  {_fmt_value(theirs[k]).rjust(10)}  {_fmt_value(ours[k]).rjust(10)}"
                  for k in shared]
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
    lines = ["", f"Execution {record.get('execution_id')} of {record.get('pipeline_name')}: "
                 f"{record.get('status')} in {format_duration(record.get('duration_seconds'))}"]
    width = max([len(s["name"]) for s in steps] + [4])
    lines.append(f"  {'STEP'.ljust(width)}  {'TYPE'.ljust(10)}  {'STATUS'.ljust(11)}  DURATION")
    for step in steps:
        lines.append(f"  {step['name'].ljust(width)}  {step['type'].ljust(10)}  {step['status'].ljust(11)}  "
                     f"{format_duration(step.get('duration_seconds'))}")
    if record.get("failure_reason"):
        lines.append(f"\nFailure: {record['failure_reason']}")
        lines.append("To run again after fixing it (a new execution): " + rerun_command(record, settings))
    evaluation, path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if isinstance(evaluation, Mapping):
        lines.append(f"\nEvaluation ({path}):")
        lines.extend(evaluation_lines(evaluation))
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
    if record.get("status") == "Succeeded" and registration:
        lines.append("\nNext:")
        if registration["status"] != "Approved":
            lines.append(f"  {NEXT_COMMANDS[0]}      # approve the new version (deploys it to the local endpoint)")
        lines.append(f"  {NEXT_COMMANDS[1]}      # forecast every item with the latest approved model")
    return "\n".join(lines)


def rerun_command(record: Mapping[str, Any], settings: Settings) -> str:
    """The command that starts this execution again with the same parameter overrides."""
    import shlex

    parts = ["python", "-m", "pipelines.run"]
    if record.get("pipeline_name") == settings.batch_pipeline_name:
        parts += ["--pipeline", "batch"]
    for name, value in (record.get("overrides") or {}).items():
        parts += ["--param", f"{name}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


# --- HTML ------------------------------------------------------------------------------------
def _layers(steps: list) -> dict:
    depth: dict = {}
    for step in steps:  # steps are in execution (topological) order
        depth[step["name"]] = 1 + max([depth.get(d, -1) for d in step.get("depends_on") or []] + [-1])
    return depth


def graph_svg(steps: list) -> str:
    """A layered left-to-right drawing of the pipeline, boxes coloured by status."""
    depth = _layers(steps)
    columns: dict = {}
    for step in steps:
        columns.setdefault(depth[step["name"]], []).append(step["name"])
    box_w, box_h, gap_x, gap_y = 215, 46, 40, 22
    position = {}
    for column, names in columns.items():
        for row, name in enumerate(names):
            position[name] = (20 + column * (box_w + gap_x), 20 + row * (box_h + gap_y))
    width = 40 + (max(columns) + 1 if columns else 1) * (box_w + gap_x)
    height = 40 + max([len(v) for v in columns.values()] + [1]) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    by_name = {s["name"]: s for s in steps}
    for step in steps:
        x2, y2 = position[step["name"]]
        for dep in step.get("depends_on") or []:
            if dep not in position:
                continue
            x1, y1 = position[dep]
            sx, sy, ex_, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
            mid = (sx + ex_) / 2
            dashed = ' stroke-dasharray="4,3"' if by_name[dep]["type"] == "Condition" else ""
            parts.append(f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex_ - 2},{ey}" fill="none" '
                         f'stroke="#555"{dashed} marker-end="url(#arrow)"/>')
    for step in steps:
        x, y = position[step["name"]]
        colour = STATUS_COLOURS.get(step["status"], "#757575")
        title = html.escape(f"{step['name']} ({step['type']}): {step['status']}"
                            + (f" - {step['failure_reason']}" if step.get("failure_reason") else ""))
        parts.append(f'<g><title>{title}</title><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
                     f'fill="white" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{x + 10}" y="{y + 19}" font-weight="bold">{html.escape(step["name"])}</text>'
                     f'<text x="{x + 10}" y="{y + 36}" fill="{colour}">{html.escape(step["type"])} · '
                     f'{html.escape(step["status"])} · {format_duration(step.get("duration_seconds"))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list, header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plots(record: Mapping[str, Any], settings: Settings) -> list:
    """PNG files written by the evaluation step (its output folder's plots)."""
    _, path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if path is None:
        return []
    return sorted(path.parent.rglob("*.png"))[:MAX_PLOTS]


def write_report(record: Mapping[str, Any], graph: Any, settings: Settings, path: Path) -> Path:
    from pipelines.local.store import atomic_write_bytes

    steps = record.get("steps") or []
    longest = max([s.get("duration_seconds") or 0 for s in steps] + [1])
    timing_rows = []
    for step in steps:
        seconds = step.get("duration_seconds")
        bar = (f'<div class="bar" style="width:{max(1, int(300 * (seconds or 0) / longest))}px;'
               f'background:{STATUS_COLOURS.get(step["status"], "#757575")}"></div>')
        log = step.get("log")
        log_link = f'<a href="{html.escape(Path(log).as_uri())}">log</a>' if log else ""
        detail = html.escape(step.get("failure_reason") or step.get("note") or "")
        timing_rows.append((html.escape(step["name"]), html.escape(step["type"]),
                            f'<span style="color:{STATUS_COLOURS.get(step["status"], "#757575")}">'
                            f'{html.escape(step["status"])}</span>',
                            format_duration(seconds), bar, log_link, detail))
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
    sections += ["<h2>Pipeline graph</h2>", graph_svg(steps),
                 "<h2>Steps</h2>", _table(timing_rows, ("Step", "Type", "Status", "Duration", "", "Log", "Detail"))]
    evaluation, eval_path = property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if isinstance(evaluation, Mapping):
        sections.append("<h2>Evaluation</h2>")
        gate = evaluation.get("quality_gate") or {}
        if gate:
            sections.append(f"<p>Quality gate: {html.escape(str(gate.get('metric')))} = "
                            f"{_fmt_value(gate.get('value'))}, threshold {_fmt_value(gate.get('threshold'))}: "
                            f"<b>{'passed' if gate.get('passed') else 'failed'}</b></p>")
        model_metrics = _metric_items(evaluation.get("forecast_metrics"))
        baseline = evaluation.get("baseline") if isinstance(evaluation.get("baseline"), Mapping) else {}
        base_metrics = dict(_metric_items(baseline.get("forecast_metrics")))
        skill = dict(_metric_items(evaluation.get("skill")))
        rows = [(html.escape(k), _fmt_value(v), _fmt_value(base_metrics[k]) if k in base_metrics else "-",
                 _fmt_value(skill[k]) if k in skill else "-") for k, v in model_metrics]
        if rows:
            sections.append(_table(rows, ("metric", "model", f"baseline ({baseline.get('method', '-')})",
                                          "skill (1 - model/baseline)")))
        champion = champion_lines(evaluation)
        if champion:
            sections.append("<h3>Champion versus challenger</h3><pre>" + html.escape("\n".join(champion)) + "</pre>")
        for warning in evaluation.get("warnings") or []:
            sections.append(f"<p class='note'>{html.escape(str(warning))}</p>")
        sections.append(f"<p class='small'>{html.escape(str(eval_path))}</p>")
    registration = registration_info(record, settings)
    if registration:
        sections.append(f"<h2>Model registry</h2><p>{html.escape(registration['arn'])}: "
                        f"<b>{html.escape(str(registration['status']))}</b></p>")
    plots = _plots(record, settings)
    if plots:
        sections.append("<h2>Evaluation plots</h2>")
        for plot in plots:
            data = base64.b64encode(plot.read_bytes()).decode("ascii")
            sections.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(plot.name)}'>"
                            f"<figcaption>{html.escape(plot.name)}</figcaption></figure>")
    parameter_rows = [(html.escape(k), html.escape(str(v))) for k, v in (record.get("parameters") or {}).items()]
    sections += ["<h2>Parameters</h2>", _table(parameter_rows, ("name", "value"))]
    output_rows = []
    for step in steps:
        for name, uri in (step.get("outputs") or {}).items():
            output_rows.append((html.escape(step["name"]), html.escape(str(name)), html.escape(str(uri))))
    if output_rows:
        sections += ["<h2>Outputs</h2>", _table(output_rows, ("step", "output", "location"))]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}"
             ".bar{height:10px}.failure{color:#c62828;font-weight:bold}.note{color:#555}"
             "img{max-width:560px;border:1px solid #eee}figure{display:inline-block;margin:6px}"
             ".small{color:#777;font-size:12px}")
    document = (f"<!doctype html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(str(record.get('execution_id')))}"
                f"</title><style>{style}</style></head><body>{''.join(sections)}</body></html>")
    atomic_write_bytes(path, document.encode("utf-8"))
    return path
