"""The Studio's HTML pages. Inline CSS, JS and SVG only: nothing is fetched from the internet."""

from __future__ import annotations

import html
import json
from typing import Any, Mapping, Optional
from urllib.parse import quote

from pipelines.local import graph_layout, report
from pipelines.studio import state
from processing.kernel import contracts
from processing.kernel.metric_format import format_metric, metric_label
from processing.kernel.settings import Settings

esc = html.escape
STATUS_COLOURS = dict(
    graph_layout.STATUS_COLOURS,
    InService="#2e7d32",
    Creating="#1565c0",
    Updating="#1565c0",
    OutOfService="#9e9e9e",
    Approved="#2e7d32",
    Rejected="#c62828",
    PendingManualApproval="#ef6c00",
)
POLL_MS = 2000
# The tab icon: inline in every page (a data: URI, nothing fetched) and served at /favicon.ico
# for pages that do not carry the link (the HTML record, the planner report), so no 404.
FAVICON_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><rect width='32' height='32' rx='6' fill='#232f3e'/>"
    "<polyline points='5,23 12,15 18,19 27,8' fill='none' stroke='#ff9900' stroke-width='3.5' "
    "stroke-linecap='round' stroke-linejoin='round'/></svg>"
)
FAVICON_LINK = f'<link rel="icon" type="image/svg+xml" href="data:image/svg+xml,{quote(FAVICON_SVG, safe="")}">'

CSS = (
    """
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f7f9;font-size:14px}
header{background:#232f3e;color:#fff;padding:0 24px;display:flex;align-items:center;gap:28px;height:48px}
header b{font-size:15px;letter-spacing:.2px}header a{color:#d5dbe1;text-decoration:none;padding:14px 2px}
header a.on,header a:hover{color:#fff;border-bottom:3px solid #ff9900}
main{max-width:1360px;margin:0 auto;padding:18px 24px 48px}
h1{font-size:20px;margin:8px 0 4px}h2{font-size:16px;margin:22px 0 8px}h3{font-size:14px;margin:14px 0 6px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:14px 16px;margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eaecef;vertical-align:top;overflow-wrap:break-word}
td.wrap,td.mono{overflow-wrap:anywhere}.nowrap,td.metric div{white-space:nowrap}
th{white-space:nowrap;font-size:12px;text-transform:uppercase;color:#57606a;letter-spacing:.3px;background:#fafbfc}
.pill{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.muted{color:#6a737d}.small{font-size:12px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.params code{background:#f1f3f5;border-radius:4px;padding:0 4px;margin-right:4px;font-size:12px;
display:inline-block;max-width:100%;overflow-wrap:anywhere}
td.params{min-width:180px}#executions th{white-space:normal}
.layout{display:grid;grid-template-columns:minmax(300px,540px) minmax(0,1fr);gap:18px;align-items:start}
.graph{overflow-x:auto;text-align:center}.graph svg{max-width:100%;height:auto}
pre{background:#0d1117;color:#e6edf3;padding:10px;border-radius:6px;overflow:auto;max-height:420px;
font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
pre.json{background:#f6f8fa;color:#1f2328}
details{border-top:1px solid #eaecef;padding:6px 0}summary{cursor:pointer;font-weight:600}
.failure{color:#c62828;font-weight:600}.better{color:#2e7d32}.worse{color:#c62828}
button{font:inherit;padding:4px 12px;border-radius:6px;border:1px solid #8c959f;background:#fff;cursor:pointer}
button.approve{background:#2e7d32;border-color:#2e7d32;color:#fff}button.reject{color:#c62828;border-color:#c62828}
form.inline{display:inline}.flash{white-space:pre-line;background:#e8f5e9;border:1px solid #a5d6a7;border-radius:6px;padding:8px 12px}
.flash.error{background:#ffebee;border-color:#ef9a9a}
a{color:#0969da}
@media (max-width:1200px){.layout{grid-template-columns:1fr}}
"""
    + report.LIGHTBOX_CSS
)


def pill(status: Optional[str], label: Optional[str] = None) -> str:
    text = str(status or "-")
    return f'<span class="pill" style="background:{STATUS_COLOURS.get(text, "#757575")}">{esc(label or text)}</span>'


def page(title: str, body: str, active: str = "", refresh: Optional[int] = None) -> str:
    nav = "".join(
        f'<a href="{href}" class="{"on" if key == active else ""}">{label}</a>'
        for key, href, label in (
            ("executions", "/", "Executions"),
            ("registry", "/registry", "Registry"),
            ("endpoints", "/endpoints", "Endpoints"),
        )
    )
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{meta}"
        f"<title>{esc(title)} · Forecast Studio</title>{FAVICON_LINK}<style>{CSS}</style></head><body>"
        f"<header><b>Forecast Studio</b>{nav}<span class='muted small' style='margin-left:auto'>local</span>"
        f"</header><main>{body}</main>{report.LIGHTBOX_JS}</body></html>"
    )


def _started(record: Mapping[str, Any]) -> str:
    return esc(str(record.get("start_time") or "")[:19].replace("T", " "))


def _started_cell(record: Mapping[str, Any]) -> str:
    """The start time for a narrow table cell: the date and the time each unbroken, on two lines if need be."""
    return " ".join(f"<span class='nowrap'>{part}</span>" for part in _started(record).split(" ", 1))


# --- / ----------------------------------------------------------------------------------------
def executions_page(settings: Settings) -> str:
    records = state.load_executions(settings)
    running = any(r.get("status") == "Executing" for r in records)
    rows = []
    for record in records:
        execution_id = str(record.get("execution_id"))
        gate = state.gate_outcome(record, settings)
        if gate:
            verdict = "passed" if gate.get("passed") else "failed"
            detail = (
                f"{esc(str(gate.get('metric')))} {_metric(gate.get('metric'), gate.get('value'))} &le; "
                f"{_metric(gate.get('metric'), gate.get('threshold'))}"
                if gate.get("metric")
                else ""
            )
            gate_html = (
                f"{pill('Succeeded' if gate.get('passed') else 'Failed', verdict)} <span class='small'>{detail}</span>"
            )
        else:
            gate_html = "<span class='muted'>-</span>"
        params = "".join(
            f"<code>{esc(str(k))}={esc(str(v))}</code> " for k, v in state.key_parameters(record, settings).items()
        )
        failure = record.get("failure_reason")
        rows.append(
            f"<tr data-execution='{esc(execution_id)}'><td class='nowrap mono'><a href='/executions/{quote(execution_id)}'>"
            f"{esc(execution_id)}</a></td><td>{esc(str(record.get('pipeline_name')))}</td>"
            f"<td>{pill(record.get('status'))}{_attempt_note(record)}</td><td class='small'>{_started_cell(record)}</td>"
            f"<td class='nowrap'>{graph_layout.format_duration(state.elapsed(record))}</td><td class='params'>{params}</td>"
            f"<td>{gate_html}</td><td class='small failure'>{esc(str(failure or ''))[:160]}</td></tr>"
        )
    if rows:
        table = (
            "<table id='executions'><tr><th>Execution</th><th>Pipeline</th><th>Status</th><th>Started (UTC)</th>"
            "<th>Duration</th><th>Key parameters</th><th>Quality gate</th><th>Failure</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    else:
        table = (
            "<p>No executions yet under <code>"
            + esc(str(state.executions_root(settings)))
            + "</code>. Start one with <code>python -m pipelines.run</code>.</p>"
        )
    note = "<p class='muted small'>An execution is running: this page refreshes every 3 s.</p>" if running else ""
    body = f"<h1>Pipeline executions</h1><p class='muted'>Both pipelines, newest first.</p>{note}<div class='card'>{table}</div>"
    return page("Executions", body, "executions", refresh=3 if running else None)


def _attempt_note(record: Mapping[str, Any]) -> str:
    """A retried execution (python -m pipelines.run --retry) says which attempt its status is from."""
    attempt = int(record.get("attempt") or 1)
    return f" <span class='small'>attempt {attempt}</span>" if attempt > 1 else ""


def _reuse_note(step: Mapping[str, Any]) -> str:
    """A step that did not run in this attempt: a cache hit (CacheConfig) or reused by a retry."""
    hit = step.get("CacheHitResult")
    if hit:
        return f"cache hit: outputs of execution {str(hit.get('SourcePipelineExecutionArn', '')).rsplit('/', 1)[-1]}"
    if step.get("reused"):
        return f"reused from attempt {step.get('attempt') or 1} (retry)"
    return ""


# --- /executions/<id> ---------------------------------------------------------------------------
def live_fragment(record: Mapping[str, Any], settings: Settings) -> dict:
    """What the execution page polls: status, the graph and the step table, rendered."""
    execution_id = str(record.get("execution_id"))
    steps = state.live_steps(record)
    svg = graph_layout.graph_svg(steps, report.branch_map(record), link="#step-{name}")
    rows = []
    for step in steps:
        detail = step.get("failure_reason") or step.get("note") or _reuse_note(step)
        rows.append(
            f"<tr data-step='{esc(step['name'])}'><td class='nowrap'><a href='#step-{esc(step['name'])}'>"
            f"{esc(step['name'])}</a></td><td class='nowrap'>{esc(step['type'])}</td>"
            f"<td class='status'>{pill(step.get('status'))}</td>"
            f"<td class='nowrap duration'>{graph_layout.format_duration(step.get('duration_seconds'))}</td>"
            f"<td class='small nowrap'>{esc(str(step.get('start_time') or '')[11:19])}</td>"
            f"<td class='small wrap'>{esc(str(detail))}</td></tr>"
        )
    table = (
        "<table id='steps'><tr><th>Step</th><th>Type</th><th>Status</th><th>Duration</th><th>Started</th>"
        "<th>Detail</th></tr>" + "".join(rows) + "</table>"
    )
    return {
        "execution_id": execution_id,
        "status": record.get("status"),
        "duration": graph_layout.format_duration(state.elapsed(record)),
        "graph": svg,
        "steps": table,
        "status_html": pill(record.get("status")),
        "step_status": {s["name"]: s.get("status") for s in steps},
    }


LIVE_JS = """<script>(function(){var id=%s,was=%s;
function poll(){fetch('/api/executions/'+id,{cache:'no-store'}).then(function(r){return r.json();}).then(function(d){
document.getElementById('graph').innerHTML=d.graph;document.getElementById('steps-table').innerHTML=d.steps;
document.getElementById('exec-status').innerHTML=d.status_html;document.getElementById('exec-duration').textContent=d.duration;
if(d.status==='Executing'){setTimeout(poll,%d);}else if(was==='Executing'){location.reload();}
}).catch(function(){setTimeout(poll,%d);});}
if(was==='Executing'){setTimeout(poll,%d);}
function openHash(){var d=document.getElementById(decodeURIComponent(location.hash.slice(1)));
if(d&&d.tagName==='DETAILS'){d.open=true;}}
window.addEventListener('hashchange',openHash);openHash();})();</script>"""


def execution_page(record: Mapping[str, Any], settings: Settings) -> str:
    execution_id = str(record.get("execution_id"))
    live = live_fragment(record, settings)
    kind = state.pipeline_kind(record, settings)
    head = [
        f"<h1>{esc(str(record.get('pipeline_name')))} · <span class='mono' style='font-size:18px'>"
        f"{esc(execution_id)}</span></h1>",
        f"<p><span id='exec-status'>{pill(record.get('status'))}</span> started {_started(record)} UTC · "
        f"duration <span id='exec-duration'>{live['duration']}</span> · "
        f"<a href='/executions/{quote(execution_id)}/record'>HTML record</a>",
    ]
    planner = state.planner_report_dir(record, settings)
    if planner is not None:
        head.append(
            f" · <a id='planner-link' href='/executions/{quote(execution_id)}/planner/report.html'>planner report</a>"
        )
    head.append("</p>")
    if record.get("failure_reason"):
        head.append(f"<p class='failure'>{esc(str(record['failure_reason']))}</p>")
    for note in record.get("notes") or []:
        head.append(f"<p class='muted small'>{esc(str(note))}</p>")
    params = "".join(f"<code>{esc(str(k))}={esc(str(v))}</code> " for k, v in (record.get("parameters") or {}).items())
    head.append(f"<p class='params small'>{params}</p>")
    body = [
        "".join(head),
        "<div class='layout'><div class='card graph' id='graph'>" + live["graph"] + "</div>"
        "<div><div class='card' id='steps-table'>"
        + live["steps"]
        + "</div>"
        + evaluation_section(record, settings)
        + "</div></div>",
        plots_section(record, settings),
        steps_section(record, settings),
    ]
    if kind == "batch" and planner is not None:
        body.insert(
            2,
            f"<div class='card'><b>Planner report</b>: <a href='/executions/{quote(execution_id)}/planner/"
            f"report.html'>report.html</a> <span class='muted small'>({esc(str(planner))})</span></div>",
        )
    script = LIVE_JS % (json.dumps(execution_id), json.dumps(record.get("status")), POLL_MS, POLL_MS * 2, POLL_MS)
    return page(f"Execution {execution_id}", "".join(body) + script, "executions")


def evaluation_section(record: Mapping[str, Any], settings: Settings) -> str:
    evaluation, path = report.property_file_document(record, contracts.EVALUATION_RESULT_NAME, settings)
    if not isinstance(evaluation, Mapping):
        return ""
    parts = ["<div class='card' id='evaluation'><h2 style='margin-top:0'>Evaluation</h2>"]
    gate = evaluation.get("quality_gate") or {}
    if gate:
        parts.append(
            f"<p>Quality gate: <b>{esc(str(gate.get('metric')))}</b> = {_metric(gate.get('metric'), gate.get('value'))}, "
            f"threshold {_metric(gate.get('metric'), gate.get('threshold'))}: "
            f"{pill('Succeeded' if gate.get('passed') else 'Failed', 'passed' if gate.get('passed') else 'failed')}</p>"
        )
    metrics = report._metric_items(evaluation.get("forecast_metrics"))
    baseline = evaluation.get("baseline") if isinstance(evaluation.get("baseline"), Mapping) else {}
    base = dict(report._metric_items(baseline.get("forecast_metrics")))
    skill = dict(report._metric_items(evaluation.get("skill")))
    rows = "".join(
        f"<tr><td>{esc(metric_label(k))}</td><td>{_metric(k, v)}</td><td>{_metric(k, base.get(k))}</td>"
        f"<td>{_metric('skill', skill.get(k))}</td></tr>"
        for k, v in metrics
    )
    if rows:
        parts.append(
            f"<table id='metrics'><tr><th>Metric</th><th>Model</th><th>Baseline "
            f"({esc(str(baseline.get('method', '-')))})</th><th>Skill (1 - model/baseline)</th></tr>{rows}</table>"
        )
    parts.append(champion_section(evaluation))
    for warning in evaluation.get("warnings") or []:
        parts.append(f"<p class='muted small'>{esc(str(warning))}</p>")
    parts.append(f"<p class='muted small'>{esc(str(path))}</p></div>")
    return "".join(parts)


def champion_section(evaluation: Mapping[str, Any]) -> str:
    """The ChampionGate's comparison, both models on the same holdout, as the run summary shows it:
    without it a ChallengerLost run's page showed only the challenger's metrics."""
    champion = evaluation.get("champion")
    if not isinstance(champion, Mapping) or champion.get("status") != "compared":
        return ""
    metric = champion.get("metric")
    passed = bool(champion.get("passed"))
    mine, theirs_value = (
        report.metric_value(champion.get("challenger_value")),
        report.metric_value(champion.get("champion_value")),
    )
    worse = mine is not None and theirs_value is not None and mine > theirs_value

    def shown(field: str, key: str) -> str:
        """Evaluate's *_shown text (ChallengerLost's: decimals enough to tell a losing challenger
        from the limit), else the value in the metric format."""
        text = champion.get(f"{field}_shown")
        return esc(text) if isinstance(text, str) and text else _metric(metric, champion.get(key))

    verdict = (
        ("challenger registered: worse than the champion, within the tolerance" if worse else "challenger registered")
        if passed
        else "champion stays (challenger not registered)"
    )
    head = (
        f"<h3 id='champion'>Champion (version {esc(str(champion.get('version')))}) versus challenger, same holdout</h3>"
        f"<p>{esc(str(metric))}: champion {shown('champion', 'champion_value')}, challenger "
        f"{shown('challenger', 'challenger_value')}, limit {shown('limit', 'limit')} "
        f"(ChallengerTolerance {esc(str(champion.get('tolerance')))}): "
        f"{pill('Succeeded' if passed else 'Failed', verdict)}</p>"
    )
    theirs, ours = champion.get("champion_metrics") or {}, champion.get("challenger_metrics") or {}
    rows = "".join(
        f"<tr><td>{esc(metric_label(k))}</td><td>{_metric(k, report.metric_value(theirs.get(k)))}</td>"
        f"<td>{_metric(k, report.metric_value(ours.get(k)))}</td></tr>"
        for k in ours
        if report.metric_value(ours.get(k)) is not None and report.metric_value(theirs.get(k)) is not None
    )
    table = f"<table id='champion-metrics'><tr><th>Metric</th><th>Champion</th><th>Challenger</th></tr>{rows}</table>"
    return head + (table if rows else "")


def plots_section(record: Mapping[str, Any], settings: Settings) -> str:
    images = report.plots(record, settings)
    if not images:
        return ""
    execution_id = quote(str(record.get("execution_id")))
    figures = "".join(
        f"<figure><img src='/executions/{execution_id}/plots/{i}' data-full='/executions/{execution_id}/plots/{i}' "
        f"alt='{esc(p.name)}' loading='lazy'><figcaption>{esc(p.name)} · "
        f"<a href='/executions/{execution_id}/plots/{i}' target='_blank'>open full size</a></figcaption></figure>"
        for i, p in enumerate(images)
    )
    return (
        f"<h2>Evaluation plots</h2><p class='muted small'>Click a plot to enlarge it.</p>"
        f"<div class='plots'>{figures}</div>{report.LIGHTBOX_HTML}"
    )


def steps_section(record: Mapping[str, Any], settings: Settings) -> str:
    execution_id = str(record.get("execution_id"))
    parts = ["<h2>Steps: logs, outputs, property files</h2><div class='card'>"]
    for step in record.get("steps") or []:
        name = step["name"]
        inner = [f"<p class='small muted'>{esc(str(step.get('description') or ''))}</p>"]
        if step.get("failure_reason"):
            inner.append(f"<p class='failure'>{esc(str(step['failure_reason']))}</p>")
        outputs = step.get("outputs") or {}
        if outputs:
            rows = []
            for key, uri in outputs.items():
                where = state.output_location(uri, settings) if isinstance(uri, str) else None
                rows.append(
                    f"<tr><td>{esc(str(key))}</td><td class='mono'>{esc(str(uri))}</td>"
                    f"<td class='mono small'>{esc(str(where)) if where and str(where) != str(uri) else ''}</td></tr>"
                )
            inner.append(
                "<h3>Outputs</h3><table><tr><th>Output</th><th>Value / location</th><th>Local path</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        for file_name, uri, text in state.property_files(record, step, settings):
            inner.append(
                f"<h3>Property file {esc(file_name)}</h3><p class='mono small'>{esc(uri)}</p>"
                f"<pre class='json'>{esc(text)}</pre>"
            )
        log = state.step_log(record, name)
        if log is not None:
            inner.append(
                f"<h3>Log</h3><p class='small'><a href='/executions/{quote(execution_id)}/steps/{quote(name)}/log'>"
                f"full log</a> <span class='mono muted'>{esc(str(step.get('log')))}</span></p>"
                f"<pre class='log'>{esc(log)}</pre>"
            )
        parts.append(
            f"<details id='step-{esc(name)}'><summary>{esc(name)} {pill(step.get('status'))} "
            f"<span class='muted small'>{esc(step['type'])} · "
            f"{graph_layout.format_duration(step.get('duration_seconds'))}</span></summary>{''.join(inner)}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


# --- /registry -----------------------------------------------------------------------------------
SHOWN_METRICS = ("wape", "wql", "mase", "mape", "rmse", "coverage")


def _metric(name: Any, text: Any) -> str:
    """A metric as `python -m deploy.approve list` shows it (0.009875 as WAPE: 0.99%; a skill, a ratio: 0.35)."""
    return esc(format_metric(name, text))


def registry_page(settings: Settings, csrf_token: str, message: Optional[str] = None, error: bool = False) -> str:
    groups = state.registry_groups(settings)
    parts = [
        "<h1>Model registry</h1><p class='muted'>Approving a version deploys it to the local endpoint "
        "(the same code as <code>python -m deploy.approve approve</code>).</p>"
    ]
    if message:
        parts.append(f"<p class='flash{' error' if error else ''}' id='flash'>{esc(message)}</p>")
    if not groups:
        parts.append("<div class='card'>No model package groups yet: a training run registers one.</div>")
    for group in groups:
        champion = group["champion"]
        title = f"<h2>{esc(group['name'])}</h2>"
        if champion:
            title += (
                f"<p class='small muted'>Champion: version {esc(str(champion['version']))} "
                f"({'serving' if champion['deployed'] else 'newest Approved'}); the arrows compare each "
                "version with it (lower is better) on the metrics each measured at registration on its own "
                "holdout (a version trained on later data is scored on later periods, so these are not "
                "like for like). A version whose training run compared it with the champion of the time "
                "(the ChampionGate: both models on the same holdout) shows that comparison instead, "
                "marked <i>same holdout</i>.</p>"
            )
        header = "".join(f"<th>{esc(metric_label(m))}</th>" for m in SHOWN_METRICS)
        rows = []
        for row in group["versions"]:
            cells = []
            for metric in SHOWN_METRICS:
                value = row["metrics"].get(f"metric_{metric}")
                compared = row["comparison"].get(metric)
                mark = ""
                if compared and compared[2] is not None:
                    recorded = state.recorded_champion(row)
                    against = (
                        f" (v{esc(str(recorded['version']))}, same holdout)"
                        if recorded and recorded.get("version")
                        else " (same holdout)"
                        if recorded
                        else ""
                    )
                    mark = (
                        f"<div class='small {'better' if compared[2] else 'worse'}' title='champion: "
                        f"{_metric(metric, compared[1])}'>{'&#9660;' if compared[2] else '&#9650;'} vs "
                        f"{_metric(metric, compared[1])}{against}</div>"
                    )
                cells.append(f"<td class='metric'>{_metric(metric, value)}{mark}</td>")
            gate = row["metrics"].get("quality_gate_metric")
            gate_text = (
                (
                    f"{esc(gate)} {_metric(gate, row['metrics'].get('quality_gate_value'))} &le; "
                    f"{_metric(gate, row['metrics'].get('quality_gate_threshold'))}"
                )
                if gate
                else "-"
            )
            execution = (row.get("pipeline_execution") or "").rsplit("/", 1)[-1]
            execution_link = (
                f"<a href='/executions/{quote(execution)}'>{esc(execution)}</a>"
                if state.EXECUTION_ID.match(execution or "")
                else "-"
            )
            actions = []
            for action, label in (("approve", "Approve"), ("reject", "Reject")):
                if (action == "approve" and row["status"] == "Approved" and row["deployed"]) or (
                    action == "reject" and row["status"] == "Rejected"
                ):
                    continue
                actions.append(
                    f"<form class='inline' method='post' action='/registry/{action}'>"
                    f"<input type='hidden' name='csrf' value='{esc(csrf_token)}'>"
                    f"<input type='hidden' name='arn' value='{esc(row['arn'])}'>"
                    f"<button class='{action}' type='submit' data-version='{esc(str(row['version']))}'>"
                    f"{label}</button></form> "
                )
            rows.append(
                f"<tr data-version='{esc(str(row['version']))}'><td><b>{esc(str(row['version']))}</b>"
                f"{' <span class=small>(serving)</span>' if row['deployed'] else ''}</td>"
                f"<td class='status'>{pill(row['status'])}</td><td class='small nowrap'>"
                f"{esc(str(row['created'] or '').replace('T', ' ').rstrip('Z'))}</td>"
                f"{''.join(cells)}<td class='small'>{gate_text}</td><td class='small'>{execution_link}</td>"
                f"<td style='white-space:nowrap'>{''.join(actions)}</td></tr>"
            )
        if len(group["versions"]) >= state.MAX_VERSIONS:
            title += (
                f"<p class='small muted'>The newest {state.MAX_VERSIONS} versions; "
                "<code>python -m deploy.approve list --limit 0</code> lists all.</p>"
            )
        parts.append(
            title + "<div class='card'><table class='versions'><tr><th>Version</th><th>Status</th>"
            f"<th>Created (UTC)</th>{header}<th>Quality gate</th><th>Execution</th><th></th></tr>"
            + "".join(rows)
            + "</table></div>"
        )
    return page("Registry", "".join(parts), "registry")


# --- /endpoints ----------------------------------------------------------------------------------
def endpoints_page(settings: Settings) -> str:
    rows = []
    listed = state.endpoints(settings)
    for row in listed:
        metrics = row.get("metrics") or {}
        latency = metrics.get("latency_ms") or {}
        latency_text = (
            f"p50 {latency['p50']:.1f} ms · p90 {latency['p90']:.1f} ms · max {latency['max']:.1f} ms"
            if "p50" in latency
            else "-"
        )
        url = row.get("url")
        url_cell = f"<a href='{esc(url)}/ping'>{esc(url)}</a>" if url else "-"
        rows.append(
            f"<tr data-endpoint='{esc(row['name'])}'><td class='nowrap'><b>{esc(row['name'])}</b></td>"
            f"<td class='status'>{pill(row['status'])}</td>"
            f"<td>{esc(str(row.get('model_version') or '-'))}</td>"
            f"<td class='mono small'>{esc(str(row.get('model_package_arn') or '-'))}</td>"
            f"<td class='mono url nowrap'>{url_cell}</td>"
            f"<td>{metrics.get('invocations', '-')}</td><td>{metrics.get('invocation_errors', '-')}</td>"
            f"<td class='small'>{latency_text}</td><td class='small failure'>"
            f"{esc(str(row.get('failure_reason') or ''))}</td></tr>"
        )
    if rows:
        table = (
            "<table id='endpoints'><tr><th>Endpoint</th><th>Status</th><th>Model version</th>"
            "<th>Model package</th><th>URL</th><th>Requests</th><th>Errors</th><th>Latency</th><th></th></tr>"
            + "".join(rows)
            + "</table>"
        )
    else:
        table = "<p>No endpoints yet: approve a version on the <a href='/registry'>registry</a> page to deploy one.</p>"
    busy = any(r["status"] in ("Creating", "Updating") for r in listed)
    body = (
        "<h1>Endpoints</h1><p class='muted'>Local endpoints (SageMaker container contract: "
        "<code>GET /ping</code>, <code>POST /invocations</code>); requests and latency from their "
        f"<code>/metrics</code>.</p><div class='card'>{table}</div>"
    )
    return page("Endpoints", body, "endpoints", refresh=3 if busy else 10)


def not_found(what: str) -> str:
    return page("Not found", f"<h1>Not found</h1><p>{esc(what)}</p><p><a href='/'>All executions</a></p>")
