"""PNG charts for the evaluation: forecasts with their p10-p90 band, and error by attribute.

Uses matplotlib's object API with the Agg canvas directly (no pyplot, no global backend
switch), so it works headless in a processing container and never touches a user's
interactive backend. matplotlib is installed by the step (processing/requirements).
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from evaluation.scoring import ACTUAL, SERIES, Columns, coverage_bounds
from processing.atomic import staged_file
from processing.kernel import contracts
from processing.kernel.near_zero import near_zero_among, near_zero_note, near_zero_ylim

HISTORY_POINTS = 56  # history shown before the holdout (8 weeks of daily data)
PANELS = 6  # series per forecast chart


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    with staged_file(path) as tmp:
        fig.savefig(str(tmp), format="png")
    return path


def _margins(fig, left: float = 0.8, right: float = 0.2, top: float = 0.5, bottom: float = 0.6, **spacing) -> None:
    """Fixed margins in inches: tight_layout costs a whole extra draw of the figure (~0.1-0.2 s each)."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height, **spacing
    )


def choose_items(per_item: pd.DataFrame, count: int = PANELS, seed: int = 0) -> Dict[str, List[str]]:
    """Best and worst series by WAPE (series with no sales excluded), and a seeded sample."""
    ranked = per_item.dropna(subset=["wape"]).sort_values(["wape", SERIES], kind="mergesort")
    best = ranked[SERIES].head(count).tolist()
    worst = ranked[SERIES].tail(count).tolist()[::-1]
    rest = sorted(set(per_item[SERIES]) - set(best) - set(worst)) or sorted(per_item[SERIES])
    sample = sorted(random.Random(seed).sample(rest, min(count, len(rest))))
    return {"best": best, "worst": worst, "sample": sample}


def plot_forecasts(
    joined: pd.DataFrame,
    history: pd.DataFrame,
    per_item: pd.DataFrame,
    items: Sequence[str],
    columns: Columns,
    quantiles: Sequence[str],
    title: str,
    path: Path,
    history_points: int = HISTORY_POINTS,
) -> Optional[Path]:
    """forecast_figure, saved to ``path``; None (nothing written) without items."""
    if not items:
        return None
    return _save(forecast_figure(joined, history, per_item, items, columns, quantiles, title, history_points), path)


def forecast_figure(
    joined: pd.DataFrame,
    history: pd.DataFrame,
    per_item: pd.DataFrame,
    items: Sequence[str],
    columns: Columns,
    quantiles: Sequence[str],
    title: str,
    history_points: int = HISTORY_POINTS,
):
    """One panel per series: recent history, holdout actuals, mean forecast, p10-p90 band.

    A series whose holdout forecast is near zero (the batch report's rule, against the average
    series' forecast over every evaluated series) gets an axis from 0 to at least one unit and
    says so in its title: autoscaled, a forecast of 0.004 with its band filled the panel."""
    bounds = coverage_bounds(quantiles)
    ncols = 2 if len(items) > 1 else 1
    nrows = math.ceil(len(items) / ncols)
    fig = _figure(7 * ncols, 2.8 * nrows + 0.6)
    indexed = per_item.set_index(SERIES)
    wape = indexed["wape"]
    tiny = near_zero_among(indexed["forecast_sum"])
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    ts = columns.timestamp
    for k, item in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        hist = history[history[SERIES] == item].tail(history_points)
        fut = joined[joined[SERIES] == item]
        ax.plot(hist[ts], hist[columns.target], color="0.45", lw=1, label="history")
        ax.plot(fut[ts], fut[ACTUAL], color="black", lw=1.5, marker=".", label="actual")
        ax.plot(fut[ts], fut[contracts.MEAN_COLUMN], color="tab:blue", lw=1.5, label="forecast (mean)")
        if bounds:
            ax.fill_between(
                fut[ts].to_numpy(),
                fut[bounds[0]].to_numpy(dtype=float),
                fut[bounds[1]].to_numpy(dtype=float),
                color="tab:blue",
                alpha=0.25,
                label=f"{bounds[0]}-{bounds[1]}",
            )
        w = wape.get(item, float("nan"))
        heading = f"{item}  (WAPE {w:.1%})" if np.isfinite(w) else f"{item}  (no sales in holdout)"
        if bool(tiny.get(item, False)):
            ax.set_ylim(*near_zero_ylim(ax.get_ylim()[1]))
            heading += f"\n{near_zero_note('item')}"
        ax.set_title(heading, fontsize=9)
        ax.tick_params(labelsize=7)
        locator = AutoDateLocator(maxticks=5)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    width = fig.get_figwidth()
    _margins(fig, left=0.06 * width, right=0.02 * width, top=0.7, bottom=0.5, hspace=0.55, wspace=0.15)
    return fig


def plot_error_by_attribute(
    by_attribute: Dict[str, Dict[str, Dict[str, float]]],
    path_for: Callable[[str], Path],
    metrics: Tuple[str, ...] = ("wape", "wql"),
) -> List[Path]:
    """One bar chart per attribute (category, region, ...): error_by_attribute_figure, saved."""
    return [
        _save(error_by_attribute_figure(attr, levels, metrics), path_for(attr)) for attr, levels in by_attribute.items()
    ]


def error_by_attribute_figure(
    attr: str, levels: Dict[str, Dict[str, float]], metrics: Tuple[str, ...] = ("wape", "wql")
):
    """WAPE and wQL per value of one attribute, in percent of the volume sold.

    The legend sits above the axes (inside, it covered the last bars) and the layout is fitted
    to the drawn labels (constrained layout), so rotated names leave no empty band below."""
    from matplotlib.ticker import PercentFormatter

    names = list(levels)
    fig = _figure(min(14.0, max(6.0, 0.35 * len(names) * len(metrics) + 2)), 4.5)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        raw = [levels[n].get(metric) for n in names]
        defined = [v is not None and np.isfinite(v) for v in raw]
        values = [v if ok else 0.0 for v, ok in zip(raw, defined)]
        pos = x + (j - (len(metrics) - 1) / 2) * width
        ax.bar(pos, values, width, label=metric.upper())
        for p, ok in zip(pos, defined):
            if not ok:  # no sales in the holdout: the ratio is undefined, not zero
                ax.text(p, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    ax.set_ylabel("error (% of volume sold)")
    ax.set_title(f"Forecast error by {attr}", loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(metrics), frameon=False, borderaxespad=0.2)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_error_distribution(per_item: pd.DataFrame, path: Path) -> Path:
    """Histogram of per-series WAPE, model vs seasonal-naive baseline."""
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    model = per_item["wape"].replace([np.inf, -np.inf], np.nan).dropna()
    base = per_item["baseline_wape"].replace([np.inf, -np.inf], np.nan).dropna()
    upper = float(np.nanpercentile(pd.concat([model, base]), 99)) if len(model) + len(base) else 1.0
    bins = np.linspace(0, max(upper, 1e-9), 30)
    ax.hist(base.clip(upper=upper), bins=bins, alpha=0.5, label="seasonal naive", color="tab:orange")
    ax.hist(model.clip(upper=upper), bins=bins, alpha=0.6, label="model", color="tab:blue")
    ax.set_xlabel("WAPE per item")
    ax.set_ylabel("items")
    ax.set_title("Per-item WAPE: model vs seasonal-naive baseline")
    ax.legend()
    _margins(fig, left=0.7)
    return _save(fig, path)


def write_plots(evaluation, columns: Columns, quantiles: Sequence[str], folder: Path, seed: int = 0) -> List[Path]:
    """All charts of one evaluation into ``folder``; returns the files written."""
    folder = Path(folder)
    written: List[Path] = []
    per_item = evaluation.per_item
    chosen = choose_items(per_item, seed=seed)
    wanted = sorted({item for items in chosen.values() for item in items})
    history = evaluation.history[evaluation.history[SERIES].isin(wanted)]  # filter the long frame once
    joined = evaluation.joined[evaluation.joined[SERIES].isin(wanted)]
    if len(wanted) <= PANELS and all(set(items) == set(wanted) for items in chosen.values()):
        # few items: best, worst and sample are the same series; one chart, under the three names
        path = plot_forecasts(
            joined,
            history,
            per_item,
            chosen["best"] or wanted,
            columns,
            quantiles,
            f"All {len(wanted)} items (best first by WAPE)",
            folder / "forecast_best.png",
        )
        if path:
            written.append(path)
            for kind in ("worst", "sample"):
                with staged_file(folder / f"forecast_{kind}.png") as tmp:
                    shutil.copyfile(path, tmp)
                written.append(folder / f"forecast_{kind}.png")
        chosen = {}
    for kind, items in chosen.items():
        path = plot_forecasts(
            joined,
            history,
            per_item,
            items,
            columns,
            quantiles,
            f"{kind.capitalize()} items by WAPE" if kind != "sample" else "Sample of items",
            folder / f"forecast_{kind}.png",
        )
        if path:
            written.append(path)
    written += plot_error_by_attribute(
        evaluation.report["by_attribute"], lambda attr: folder / f"error_by_{_slug(attr)}.png"
    )
    written.append(plot_error_distribution(per_item, folder / "error_distribution.png"))
    return written


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text)) or "attribute"
