"""Charts for the batch report: forecast by group with bands, and the top movers.

matplotlib's object API on the Agg canvas (no pyplot: lighter to import, no global backend
switch, nothing kept alive between figures) with fixed margins in inches: tight_layout costs a
whole extra draw per figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from processing.kernel.contracts import MEAN_COLUMN
from processing.reporting import NEAR_ZERO_SHARE, observed_rows

HISTORY_PERIODS_SHOWN = 56
MAX_PANELS = 12  # forecast_by_group: a fixed-size picture however many groups there are
NEAR_ZERO_AXIS_TOP = 1.0  # a near-zero panel's y axis reaches at least one unit of demand
DPI = 110


def _near_zero(total: float, average: float) -> bool:
    """The tables' near-zero rule (reporting.item_totals) for a panel: not positive, or below
    NEAR_ZERO_SHARE of the average panel's forecast."""
    return bool(total <= 0 or total < NEAR_ZERO_SHARE * max(average, 0.0))


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
    demand = future_all[MEAN_COLUMN].groupby(level=0).sum() if group else future_all[MEAN_COLUMN].sum()
    average_demand = float(demand.mean()) if group else float(demand)  # over every group, drawn or not
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
        if _near_zero(float(future[MEAN_COLUMN].sum()), average_demand):
            # autoscaled, a band of 0.01 around a forecast of 0.01 fills the panel like a real one
            axis.set_ylim(0, max(axis.get_ylim()[1], NEAR_ZERO_AXIS_TOP))
            title += f" (near zero: forecast below {NEAR_ZERO_SHARE:.0%} of the average panel's; axis from 0)"
        axis.set_title(title, loc="left", fontsize=10)
        axis.grid(alpha=0.3)
        locator = AutoDateLocator(maxticks=8)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[0].legend(loc="upper left", fontsize=8)
    _margins(fig, left=0.75, right=0.2, top=0.35, bottom=0.45, hspace=0.35)
    return _save(fig, out)


def top_movers(moves: pd.DataFrame, item_id: str, out: Path, limit: int = 10) -> Path:
    """Horizontal bars: the largest rises and falls against the last comparable period."""
    ranked = moves.dropna(subset=["change"])
    picked = pd.concat([ranked.nlargest(limit, "change"), ranked.nsmallest(limit, "change")]).drop_duplicates(item_id)
    picked = picked.sort_values("change")
    fig = _figure(8, max(2.5, 0.32 * len(picked) + 1))
    axis = fig.add_subplot(1, 1, 1)
    colours: List[str] = ["#2b7bba" if value < 0 else "#d45500" for value in picked["change"]]
    axis.barh(picked[item_id].astype(str), picked["change"] * 100, color=colours)
    axis.axvline(0, color="#444444", linewidth=0.8)
    axis.set_xlabel("change of expected demand vs last comparable period (%)")
    axis.set_title("Top movers", loc="left")
    axis.grid(axis="x", alpha=0.3)
    label = max((len(str(v)) for v in picked[item_id]), default=4)
    _margins(fig, left=min(0.3 + 0.075 * label, 3.5), right=0.3, top=0.4, bottom=0.6)
    return _save(fig, out)


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
