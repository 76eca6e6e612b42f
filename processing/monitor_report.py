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

from processing.kernel.metric_format import format_metric, format_share

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


FEW_POINTS = 6  # up to this many runs, each point is labelled with its wQL
DEFAULT_PERIOD_DAYS = 7  # the x padding around a single run when nothing says how often runs come
VERSION_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")  # one per model version


def _version(arn) -> Optional[str]:
    """'v2' for a model package ARN ending in /2; None when no ARN is recorded."""
    if not isinstance(arn, str) or not arn:
        return None
    tail = arn.rstrip("/").rsplit("/", 1)[-1]
    return f"v{tail}" if tail.isdigit() else tail


def accuracy_chart(accuracy_doc: Optional[dict], out: Path) -> Optional[Path]:
    """accuracy_figure, saved to ``out``; None (no chart) while nothing has been scored."""
    fig = accuracy_figure(accuracy_doc)
    if fig is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def accuracy_figure(accuracy_doc: Optional[dict]):
    """wQL of earlier forecasts over time (by the last scored period, coloured by the version that
    made them) against the registered wQL.

    The registered wQL is a horizontal reference line per model version, over that version's
    runs only (it ends halfway to the next version's first run), labelled with version and value; the x axis spans the runs plus half
    a run interval either side (a week around a single run), not matplotlib's default years
    around one date. The y axis starts at 0, so a wQL twice the registered one looks twice as
    high. matplotlib's object API (no pyplot): nothing global, nothing kept between reports."""
    records = [r for r in (accuracy_doc or {}).get("history") or [] if r.get("wql") is not None]
    if not records:
        return None
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    frame = pd.DataFrame(records)
    end = frame["end"] if "end" in frame else pd.Series(None, index=frame.index, dtype=object)
    frame["when"] = pd.to_datetime(end.fillna(frame.get("created")), format="mixed")
    frame = frame.sort_values("when", kind="mergesort").reset_index(drop=True)
    first, last = frame["when"].iloc[0], frame["when"].iloc[-1]
    gaps = frame["when"].diff().dropna()
    gaps = gaps[gaps > pd.Timedelta(0)]
    period = gaps.median() if len(gaps) else pd.Timedelta(days=DEFAULT_PERIOD_DAYS)
    pad = max(period / 2, (last - first) * 0.03, pd.Timedelta(days=1))
    left, right = first - pad, last + pad

    fig = Figure(figsize=(10, 3.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axis = fig.add_subplot(1, 1, 1)
    wql = frame["wql"].astype(float)
    axis.plot(frame["when"], wql, color="#9a9a9a", linewidth=1.5, label="wQL of earlier forecasts", zorder=2)
    top = float(wql.max())
    ceiling = top * 1.25 if top > 0 else 1.0
    registered = (
        frame["registered_wql"].astype(float) if "registered_wql" in frame else pd.Series(float("nan"), frame.index)
    )
    if registered.notna().any():
        ceiling = max(ceiling, float(registered.max()) * 1.25)
    # one group per model version in a row (by its ARN; by the registered wQL when no ARN is recorded)
    versions = frame["model_package_arn"].map(_version) if "model_package_arn" in frame else None
    key = versions.fillna(registered.astype(str)) if versions is not None else registered.astype(str)
    segment = (key != key.shift()).cumsum()
    groups = [frame.index[segment == k] for k in segment.unique()]
    # a version's reference spans its own runs: the boundary is halfway between the last run of
    # one version and the first of the next (the axis' edges outside), never into the other's points
    bounds = [left]
    for before, after in zip(groups, groups[1:]):
        bounds.append(frame["when"][before[-1]] + (frame["when"][after[0]] - frame["when"][before[-1]]) / 2)
    bounds.append(right)
    labelled = False
    for number, (rows, x0, x1) in enumerate(zip(groups, bounds[:-1], bounds[1:])):
        color = VERSION_COLORS[number % len(VERSION_COLORS)]
        version = versions[rows[0]] if versions is not None else None
        axis.plot(
            frame["when"][rows],
            wql[rows],
            linestyle="none",
            marker="o",
            markersize=7,
            color=color,
            label=f"forecasts by {version}" if version else None,
            zorder=3,
        )
        if len(frame) <= FEW_POINTS:
            for row in rows:
                axis.annotate(
                    format_share(wql[row]),
                    (frame["when"][row], wql[row]),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=8,
                )
        value = registered[rows[0]]
        if pd.isna(value):
            continue
        axis.hlines(
            value,
            x0,
            x1,
            color=color,
            linestyle="--",
            linewidth=2,
            label=None if labelled else "wQL at registration (holdout)",
        )
        if not labelled:  # the legend's entry in no version's colour: each line has its version's
            axis.collections[-1].set_label("_registered")
            axis.plot([], [], color="#555555", linestyle="--", linewidth=2, label="wQL at registration (holdout)")
        labelled = True
        # the label goes on the side of the line away from the version's runs, unless that side is
        # the x axis (a line near 0 keeps its label above it); at the segment's left end, clear of
        # the next version's label
        below = bool(wql[rows].iloc[0] >= value and value > 0.12 * ceiling)
        axis.annotate(
            f"{version + ' ' if version else ''}at registration {format_share(value)}",
            (x0, value),
            textcoords="offset points",
            xytext=(4, -4 if below else 4),
            ha="left",
            va="top" if below else "bottom",
            fontsize=8,
            color=color,
        )
    axis.set_xlim(left, right)
    axis.set_ylim(0, ceiling)
    locator = AutoDateLocator(minticks=3, maxticks=8)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axis.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    axis.set_ylabel("wQL (% of volume sold)")
    axis.set_xlabel("last period scored")
    axis.set_title("Forecast accuracy over time", loc="left")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, frameon=False, fontsize="small")
    return fig


def _fmt(value, key: str) -> str:
    """A value of column ``key`` (a metric name: wql, wape, coverage, bias, level, ratio) in that
    metric's one format (processing.kernel.metric_format), HTML-escaped."""
    return html.escape(format_metric(key, value))


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
                f"<code>{html.escape(str(scored['model_package_arn']))}</code>: wQL {_fmt(scored['wql'], 'wql')}, "
                f"WAPE {_fmt(scored['wape'], 'wape')}, bias {_fmt(scored['bias'], 'bias')} units a period, "
                f"{'-'.join(scored.get('coverage_interval') or [])} coverage {_fmt(scored['coverage'], 'coverage')}; "
                f"wQL at registration {_fmt(scored.get('registered_wql'), 'wql')}.</p>"
            )
            rows = [(f"version {v}", s) for v, s in (scored.get("by_model_version") or {}).items()]
            for attribute, levels in (scored.get("by_attribute") or {}).items():
                rows += [(f"{attribute} = {level}", s) for level, s in levels.items()]
            parts.append(
                "<table class='table'><tr><th>scope</th><th>items</th><th>wQL</th><th>WAPE</th>"
                "<th>bias</th><th>coverage</th></tr>"
                + "".join(
                    f"<tr><td>{html.escape(scope)}</td><td>{s.get('items')}</td><td>{_fmt(s.get('wql'), 'wql')}</td>"
                    f"<td>{_fmt(s.get('wape'), 'wape')}</td><td>{_fmt(s.get('bias'), 'bias')}</td>"
                    f"<td>{_fmt(s.get('coverage'), 'coverage')}</td></tr>"
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
                        f"<tr><td>{html.escape(s['item_id'])}</td><td>{_fmt(s['training_level'], 'level')}</td>"
                        f"<td>{_fmt(s['recent_level'], 'level')}</td><td>{_fmt(s['ratio'], 'ratio')}</td></tr>"
                        for s in shifts
                    )
                    + "</table>"
                    if shifts
                    else "<p>None.</p>"
                )
            )
    return "".join(parts)
