"""The planner report's monitoring part: accuracy of earlier forecasts and input drift.

Reads what the MonitorForecasts step wrote (accuracy.json, drift.json), adds
`accuracy_of_previous_forecasts` and `input_drift` to summary.json, draws the accuracy
history against the wQL the model had at registration, and renders the HTML sections.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import List, Optional, Tuple

SUMMARY_KEYS = ("periods", "items", "wql", "wape", "bias", "coverage", "model_package_arn")


def load(monitor_dir: Optional[Path]) -> Tuple[Optional[dict], Optional[dict]]:
    """(accuracy.json, drift.json) of the MonitorForecasts step, (None, None) without a folder."""
    if monitor_dir is None:
        return None, None
    folder = Path(monitor_dir)

    def read(name: str) -> Optional[dict]:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else None

    return read("accuracy.json"), read("drift.json")


def extend_summary(summary: dict, accuracy_doc: Optional[dict], drift: Optional[dict]) -> None:
    """accuracy_of_previous_forecasts: the issue's keys first, then the breakdowns (null when
    no earlier forecast has an actual yet); input_drift: the drift statement."""
    if accuracy_doc is not None:
        scored = accuracy_doc.get("accuracy_of_previous_forecasts")
        summary["accuracy_of_previous_forecasts"] = (
            {**{k: scored.get(k) for k in SUMMARY_KEYS}, **{k: v for k, v in scored.items() if k not in SUMMARY_KEYS}}
            if scored
            else None
        )
    if drift is not None:
        summary["input_drift"] = drift


def accuracy_chart(accuracy_doc: Optional[dict], out: Path) -> Optional[Path]:
    """wQL of earlier forecasts over time (by the last scored period) against the registered wQL."""
    records = [r for r in (accuracy_doc or {}).get("history") or [] if r.get("wql") is not None]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(records)
    frame["when"] = pd.to_datetime(frame["end"].fillna(frame["created"]))
    frame = frame.sort_values("when")
    fig, axis = plt.subplots(figsize=(10, 3.2))
    axis.plot(frame["when"], frame["wql"], marker="o", color="#1f77b4", label="wQL of earlier forecasts")
    if "registered_wql" in frame and frame["registered_wql"].notna().any():
        axis.step(
            frame["when"],
            frame["registered_wql"],
            where="post",
            color="#d62728",
            linestyle="--",
            label="wQL at registration (holdout)",
        )
    axis.set_ylabel("wQL")
    axis.set_title("Forecast accuracy over time")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def html_sections(summary: dict, chart: Optional[Path], root: Path) -> str:
    parts: List[str] = []
    if "accuracy_of_previous_forecasts" in summary:
        parts.append("<h2>Accuracy of previous forecasts</h2>")
        scored = summary["accuracy_of_previous_forecasts"]
        if not scored:
            parts.append(
                "<p>No earlier forecast has an actual in this input yet: accuracy is measured once "
                "a later batch input brings the actuals of forecast periods.</p>"
            )
        else:
            parts.append(
                f"<p>{scored['items']} item(s) x {scored['periods']} period(s) ({html.escape(str(scored['start']))} "
                f"to {html.escape(str(scored['end']))}) forecast earlier by "
                f"<code>{html.escape(str(scored['model_package_arn']))}</code>: wQL {_fmt(scored['wql'])}, "
                f"WAPE {_fmt(scored['wape'])}, bias {_fmt(scored['bias'])}, "
                f"{'-'.join(scored.get('coverage_interval') or [])} coverage {_fmt(scored['coverage'])}; "
                f"wQL at registration {_fmt(scored.get('registered_wql'))}.</p>"
            )
            rows = [(f"version {v}", s) for v, s in (scored.get("by_model_version") or {}).items()]
            for attribute, levels in (scored.get("by_attribute") or {}).items():
                rows += [(f"{attribute} = {level}", s) for level, s in levels.items()]
            parts.append(
                "<table class='table'><tr><th>scope</th><th>items</th><th>wQL</th><th>WAPE</th>"
                "<th>bias</th><th>coverage</th></tr>"
                + "".join(
                    f"<tr><td>{html.escape(scope)}</td><td>{s.get('items')}</td><td>{_fmt(s.get('wql'))}</td>"
                    f"<td>{_fmt(s.get('wape'))}</td><td>{_fmt(s.get('bias'))}</td>"
                    f"<td>{_fmt(s.get('coverage'))}</td></tr>"
                    for scope, s in rows
                )
                + "</table>"
            )
        if chart is not None:
            parts.append(f'<img src="{html.escape(str(chart.relative_to(root)))}" alt="accuracy over time">')
    drift = summary.get("input_drift")
    if drift is not None:
        parts.append("<h2>What changed since training</h2>")
        if not drift.get("available"):
            parts.append(f"<p>Not available: {html.escape(str(drift.get('reason')))}.</p>")
        else:
            parts.append(
                f"<p>The model was trained on {drift['training_items']} item(s); this input has "
                f"{drift['input_items']}.</p>"
            )
            new = drift["new_items"]
            parts.append(
                f"<h3>New since training ({drift['new_items_count']})</h3>"
                + (
                    "<ul>"
                    + "".join(f"<li>{html.escape(n['item_id'])}: {html.escape(n['handling'])}</li>" for n in new)
                    + "</ul>"
                    if new
                    else "<p>None.</p>"
                )
            )
            gone = drift["disappeared_items"]
            parts.append(
                f"<h3>Disappeared ({drift['disappeared_items_count']})</h3>"
                + ("<p>" + html.escape(", ".join(gone)) + "</p>" if gone else "<p>None.</p>")
            )
            shifts = drift["level_shifts"]
            parts.append(
                f"<h3>Level moved beyond x{drift['level_factor']:g} ({drift['level_shifts_count']})</h3>"
                f"<p class='small'>{html.escape(drift['level_basis'])}; question these forecasts.</p>"
                + (
                    "<table class='table'><tr><th>item</th><th>training level</th><th>recent level</th><th>ratio</th></tr>"
                    + "".join(
                        f"<tr><td>{html.escape(s['item_id'])}</td><td>{_fmt(s['training_level'])}</td>"
                        f"<td>{_fmt(s['recent_level'])}</td><td>{_fmt(s['ratio'])}</td></tr>"
                        for s in shifts
                    )
                    + "</table>"
                    if shifts
                    else "<p>None.</p>"
                )
            )
    return "".join(parts)
