"""Evaluation charts: few items draw one forecast chart under the three names; more draw three."""

from __future__ import annotations

import pytest

from evaluation import evaluate
from tests.evaluation.conftest import build_dataset

pytest.importorskip("matplotlib")


def _run(folder, **dataset):
    ds = build_dataset(folder, **dataset)
    out = folder / "evaluation"
    evaluate.main(
        ["--forecasts", str(ds.forecasts), "--actuals", str(ds.actuals), "--history", str(ds.history)]
        + ["--out", str(out), "--frequency", "D", "--quantiles", "p10,p50,p90"]
    )
    return {kind: (out / "plots" / f"forecast_{kind}.png").read_bytes() for kind in ("best", "worst", "sample")}


def test_given_few_items_then_best_worst_and_sample_are_one_chart_of_them_all(tmp_path):
    charts = _run(tmp_path, n_items=3, zero_item=False)
    assert charts["best"] == charts["worst"] == charts["sample"] and len(charts["best"]) > 10_000


def test_given_items_that_split_into_best_worst_and_sample_then_three_charts(tmp_path):
    charts = _run(tmp_path, n_items=6)  # item_00 never sells: it is the sample, the others best and worst
    assert len({charts["best"], charts["worst"], charts["sample"]}) == 3


def _frames(levels):
    """History, joined holdout and per-item scores for series of the given daily levels; a level
    of ~0 forecasts 0.004 a day with a band of 0 to 0.012 (the walkthrough's books_fiction panel)."""
    import numpy as np
    import pandas as pd

    from evaluation.scoring import ACTUAL, SERIES

    past = pd.date_range("2024-01-01", periods=21)
    future = pd.date_range("2024-01-22", periods=7)
    history, joined, per_item = [], [], []
    for k, level in enumerate(levels):
        item = f"item_{k}"
        noise = np.sin(np.arange(28))
        mean = level + 0.1 * level * noise[21:] if level else np.full(7, 0.004)
        low, high = (0.9, 1.1) if level else (0.0, 3.0)
        history.append(
            pd.DataFrame({SERIES: item, "timestamp": past, "target_value": level + 0.1 * level * noise[:21]})
        )
        joined.append(
            pd.DataFrame(
                {SERIES: item, "timestamp": future, ACTUAL: level, "mean": mean, "p10": mean * low, "p90": mean * high}
            )
        )
        per_item.append({SERIES: item, "wape": 0.1 if level else float("nan"), "forecast_sum": float(mean.sum())})
    return pd.concat(history), pd.concat(joined), pd.DataFrame(per_item)


def test_given_a_near_zero_series_when_charting_forecasts_then_its_axis_starts_at_0_reaches_1_and_says_so():
    """Autoscaled, a forecast of 0.004 with a 0-0.012 band filled its panel like a 500-unit series."""
    from evaluation import plots
    from evaluation.scoring import Columns
    from processing.kernel.near_zero import NEAR_ZERO_AXIS_TOP

    history, joined, per_item = _frames([0.0, 500.0, 200.0])
    fig = plots.forecast_figure(
        joined, history, per_item, ["item_0", "item_1"], Columns(), ["p10", "p50", "p90"], "Sample of items"
    )
    tiny, real = fig.axes[:2]
    assert tiny.get_ylim()[0] == 0 and tiny.get_ylim()[1] >= NEAR_ZERO_AXIS_TOP
    assert "near zero: forecast below 1% of the average item's; axis from 0" in tiny.get_title()
    assert "near zero" not in real.get_title() and real.get_ylim()[0] > 100  # a real series keeps its own axis


def test_given_a_small_series_then_near_zero_is_judged_against_every_scored_series_not_only_the_drawn_ones():
    """0.5 a day is 1.2% of the two drawn series' average but 0.14% of all three's (per_item)."""
    from evaluation import plots
    from evaluation.scoring import Columns

    history, joined, per_item = _frames([0.5, 40.0, 1000.0])
    fig = plots.forecast_figure(joined, history, per_item, ["item_0", "item_1"], Columns(), ["p10", "p90"], "t")
    assert ["near zero" in ax.get_title() for ax in fig.axes] == [True, False]
    history, joined, per_item = _frames([30.0, 40.0, 1000.0])  # 30 a day: 8% of the average
    fig = plots.forecast_figure(joined, history, per_item, ["item_0", "item_1"], Columns(), ["p10", "p90"], "t")
    assert all("near zero" not in ax.get_title() for ax in fig.axes)


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def test_given_five_regions_when_charting_error_by_attribute_then_the_legend_covers_no_bar():
    """The legend sat inside the axes, upper right, over the West bar."""
    from matplotlib.patches import Rectangle

    from evaluation import plots

    levels = {r: {"wape": 0.0102, "wql": 0.0071} for r in ("Central", "East", "North", "South", "West")}
    fig = plots.error_by_attribute_figure("region", levels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = _extent(ax.get_legend(), renderer)
    bars = [_extent(p, renderer) for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 10
    assert not any(legend.overlaps(bar) for bar in bars)
    assert legend.y0 >= _extent(ax, renderer).y1 - 1  # above the axes, not in the plotting area
    assert not legend.overlaps(_extent(ax.title, renderer))


def test_given_many_products_when_charting_error_by_attribute_then_no_empty_band_is_left_below_the_labels():
    """The bottom margin was estimated from the label lengths and left ~0.7 in of blank below them."""
    from evaluation import plots

    names = ["accessories", "apparel", "childrens", "headphones", "nonfiction", "smartphone", "technical", "textbook"]
    levels = {n: {"wape": 0.01 + 0.001 * k, "wql": 0.007} for k, n in enumerate(names)}
    levels["childrens"] = {"wape": None, "wql": None}  # no sales in the holdout: n/a
    fig = plots.error_by_attribute_figure("product", levels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t.get_window_extent(renderer) for t in fig.axes[0].get_xticklabels()]
    blank_below = min(b.y0 for b in labels) / fig.dpi  # inches between the lowest label and the figure's edge
    assert blank_below < 0.25
    assert min(b.x0 for b in labels) >= 0  # and the first rotated label is not cut off on the left
