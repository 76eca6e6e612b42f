"""Charts for the batch report: forecast by group with bands, and the top movers.

matplotlib's object API on the Agg canvas (no pyplot: lighter to import, no global backend
switch, nothing kept alive between figures) with fixed margins in inches: tight_layout costs a
whole extra draw per figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from processing.kernel.contracts import MEAN_COLUMN
from processing.kernel.near_zero import near_zero_among, near_zero_note, near_zero_ylim
from processing.reporting import observed_rows

HISTORY_PERIODS_SHOWN = 56
MAX_PANELS = 12  # forecast_by_group: a fixed-size picture however many groups there are
DPI = 110


def _panel(sums, name, group: Optional[str]):
    """One group's rows of a (group, time)-indexed sum, indexed by time."""
    if not group:
        return sums
    if name not in sums.index.get_level_values(0):
        return sums.iloc[:0].droplevel(0)
    return sums.xs(name, level=0)


def forecast_by_group(
    table: pd.DataFrame,
    history: pd.DataFrame,
    group: Optional[str],
    timestamp: str,
    target: str,
    lower: str,
    upper: str,
    out: Path,
) -> Path:
    """One panel per group: recent actuals, the summed mean forecast and the summed band.

    At most MAX_PANELS panels (the groups of largest forecast demand), however many groups
    there are; the sums are one groupby each over the whole table and history (not one
    filter of the history per group)."""
    names = sorted(table[group].dropna().unique()) if group else ["all items"]
    keys = [group, timestamp] if group else [timestamp]
    future_all = table.groupby(keys)[[MEAN_COLUMN, lower, upper]].sum()
    observed = observed_rows(history[[*keys, target]], target)
    # observed=True: a categorical group column (the lean history) sums only the (group, time) pairs present
    actual_all = observed.groupby(keys, observed=True)[target].sum()
    if group:
        demand = future_all[MEAN_COLUMN].groupby(level=0).sum()
    else:
        demand = pd.Series({names[0]: future_all[MEAN_COLUMN].sum()})
    # the tables' near-zero rule (reporting.item_totals): each panel against every group, drawn or not
    tiny = near_zero_among(demand)
    if len(names) > MAX_PANELS:
        names = sorted(demand.sort_values(ascending=False, kind="stable").index[:MAX_PANELS])
    fig = _figure(10, 2.6 * len(names))
    axes = [fig.add_subplot(len(names), 1, k + 1) for k in range(len(names))]
    for axis, name in zip(axes, names):
        future = _panel(future_all, name, group)
        actual = _panel(actual_all, name, group).tail(HISTORY_PERIODS_SHOWN)
        axis.plot(actual.index, actual.values, color="#444444", linewidth=1.2, label="actual")
        axis.fill_between(
            future.index, future[lower], future[upper], color="#ff9900", alpha=0.3, label=f"{lower}-{upper} (summed)"
        )
        axis.plot(future.index, future[MEAN_COLUMN], color="#d45500", linewidth=1.6, label="forecast mean")
        title = str(name)
        if tiny[name]:
            # autoscaled, a band of 0.01 around a forecast of 0.01 fills the panel like a real one
            axis.set_ylim(*near_zero_ylim(axis.get_ylim()[1]))
            title += f" ({near_zero_note('panel')})"
        axis.set_title(title, loc="left", fontsize=10)
        axis.grid(alpha=0.3)
        locator = AutoDateLocator(maxticks=8)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[0].legend(loc="upper left", fontsize=8)
    _margins(fig, left=0.75, right=0.2, top=0.35, bottom=0.45, hspace=0.35)
    return _save(fig, out)


def split_movers(moves: pd.DataFrame, limit: int = 10) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(rises, falls): the `limit` largest rises (change > 0, largest first) and falls (change < 0,
    largest first). An item with no change, or no comparable period, is neither; a side with
    no item stays empty rather than being filled with the other sign's smallest moves."""
    ranked = moves.dropna(subset=["change"])
    rises = ranked[ranked["change"] > 0].nlargest(limit, "change")
    falls = ranked[ranked["change"] < 0].nsmallest(limit, "change")
    return rises, falls


def movers_title(rises: pd.DataFrame, falls: pd.DataFrame) -> str:
    """What the chart shows, and which side has no item."""
    if rises.empty and falls.empty:
        return "Top movers: no item rises or falls against the last comparable period"
    shown = []
    shown.append(f"the {len(rises)} largest rise{'s' if len(rises) != 1 else ''}" if len(rises) else "no item rises")
    shown.append(f"the {len(falls)} largest fall{'s' if len(falls) != 1 else ''}" if len(falls) else "no item falls")
    return "Top movers: " + ", ".join(shown)


def top_movers(moves: pd.DataFrame, item_id: str, out: Path, limit: int = 10) -> Path:
    """top_movers_figure, saved to ``out``."""
    return _save(top_movers_figure(moves, item_id, limit), out)


def top_movers_figure(moves: pd.DataFrame, item_id: str, limit: int = 10) -> Figure:
    """Horizontal bars: the largest rises and falls against the last comparable period, each
    bar labelled with its change; rises only among the rises, falls only among the falls."""
    rises, falls = split_movers(moves, limit)
    # falls at the bottom (largest fall lowest), rises at the top (largest rise highest)
    picked = pd.concat([falls, rises.iloc[::-1]])
    fig = _figure(8, max(2.5, 0.32 * len(picked) + 1.2))
    axis = fig.add_subplot(1, 1, 1)
    colours: List[str] = ["#2b7bba" if value < 0 else "#d45500" for value in picked["change"]]
    percent = picked["change"].to_numpy(dtype=float) * 100
    bars = axis.barh(picked[item_id].astype(str), percent, color=colours)
    decimals = 1 if len(percent) and float(abs(percent).max()) < 10 else 0  # +2.1% and +2.4% stay apart
    axis.bar_label(bars, labels=[f"{v:+.{decimals}f}%" for v in percent], padding=3, fontsize=8)
    if len(picked):
        axis.axvline(0, color="#444444", linewidth=0.8)
        low, high = min(float(percent.min()), 0.0), max(float(percent.max()), 0.0)
        pad = 0.15 * max(high - low, 1.0)  # room for the labels at the bars' ends
        axis.set_xlim(low - (pad if low < 0 else 0.05 * pad), high + (pad if high > 0 else 0.05 * pad))
    else:
        axis.set_xticks([])
        axis.set_yticks([])
        axis.text(
            0.5,
            0.5,
            "every item is unchanged or has no comparable period",
            transform=axis.transAxes,
            ha="center",
            va="center",
            color="#444444",
        )
    axis.set_xlabel("change of expected demand vs last comparable period (%)")
    axis.set_title(movers_title(rises, falls), loc="left", fontsize=11)
    axis.grid(axis="x", alpha=0.3)
    label = max((len(str(v)) for v in picked[item_id]), default=4)
    _margins(fig, left=min(0.3 + 0.075 * label, 3.5), right=0.3, top=0.4, bottom=0.6)
    return fig


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float, **spacing) -> None:
    """Margins in inches, whatever the figure's size."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height, **spacing
    )


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out
