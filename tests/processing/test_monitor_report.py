"""The report's monitoring part: the accuracy-over-time chart and the accuracy tables' number formats."""

from __future__ import annotations

import re

import pytest

from processing import monitor_report

pytest.importorskip("matplotlib")


def _run(k, end, wql, registered=0.0069):
    return {
        "execution_id": f"run{k}",
        "created": f"{end}T06:00:00",
        "end": end,
        "wql": wql,
        "registered_wql": registered,
    }


def _registered_lines(axis):
    """(y, x0, x1) of each horizontal reference segment (hlines draws a LineCollection)."""
    from matplotlib.collections import LineCollection

    found = []
    for collection in axis.collections:
        if isinstance(collection, LineCollection):
            for segment in collection.get_segments():
                (x0, y0), (x1, y1) = segment[0], segment[-1]
                assert y0 == y1
                found.append((y0, x0, x1))
    return found


def test_given_one_run_when_charting_accuracy_then_the_axis_spans_days_around_it_and_the_registered_wql_is_a_labelled_line():
    """One run drew a 2022-2026 x axis and an invisible one-point step for the registered wQL."""
    from matplotlib.dates import date2num

    fig = monitor_report.accuracy_figure({"history": [_run(1, "2024-01-14", 0.0123)]})
    axis = fig.axes[0]
    left, right = axis.get_xlim()
    point = date2num(__import__("datetime").datetime(2024, 1, 14))
    assert left < point < right and right - left <= 14  # a week either side at most, not years
    lines = _registered_lines(axis)
    assert lines == [(pytest.approx(0.0069), pytest.approx(left), pytest.approx(right))]  # across the whole axis
    assert "wQL at registration (holdout)" in [t.get_text() for t in axis.get_legend().get_texts()]
    notes = [t.get_text() for t in axis.texts]
    assert "at registration 0.69%" in notes and "1.23%" in notes
    assert axis.get_ylim()[0] == 0 and axis.get_ylim()[1] > 0.0123  # from 0: proportions as they are


def test_given_a_new_version_registered_then_each_version_has_its_own_reference_over_its_own_runs():
    """The previous version's line ran up to the new version's first point, and into its label."""
    from matplotlib.dates import date2num

    history = [_run(1, "2024-01-07", 0.012), _run(2, "2024-01-14", 0.010), _run(3, "2024-01-21", 0.009, 0.0072)]
    for record, version in zip(history, (1, 1, 2)):
        record["model_package_arn"] = f"arn:aws:sagemaker:us-east-1:0:model-package/demand-forecasting/{version}"
    axis = monitor_report.accuracy_figure({"history": history}).axes[0]
    left, right = axis.get_xlim()
    day = lambda d: date2num(__import__("datetime").datetime(2024, 1, d))  # noqa: E731
    halfway = (day(14) + day(21)) / 2  # between v1's last run and v2's first
    assert _registered_lines(axis) == [
        (pytest.approx(0.0069), pytest.approx(left), pytest.approx(halfway)),
        (pytest.approx(0.0072), pytest.approx(halfway), pytest.approx(right)),
    ]
    assert right - left == pytest.approx(14 + 7)  # the runs' span plus half a run interval either side
    notes = [t.get_text() for t in axis.texts]
    assert "v1 at registration 0.69%" in notes and "v2 at registration 0.72%" in notes
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    assert "forecasts by v1" in legend and "forecasts by v2" in legend
    # each point is drawn in its version's colour
    markers = {line.get_label(): line for line in axis.get_lines() if line.get_marker() == "o"}
    assert [date2num(x) for x in markers["forecasts by v2"].get_xdata()] == [day(21)]
    assert markers["forecasts by v1"].get_color() != markers["forecasts by v2"].get_color()


def test_given_nothing_scored_then_no_chart(tmp_path):
    assert monitor_report.accuracy_chart({"history": [{"wql": None}]}, tmp_path / "a.png") is None
    assert monitor_report.accuracy_chart(None, tmp_path / "a.png") is None
    written = monitor_report.accuracy_chart({"history": [_run(1, "2024-01-14", 0.0123)]}, tmp_path / "a.png")
    assert written == tmp_path / "a.png" and written.stat().st_size > 10_000


def test_given_small_and_tiny_scores_when_rendering_then_each_column_has_one_number_format():
    """`%.4g` printed 0.0123 next to 1.23e-05 in the same column."""
    scored = {
        "items": 3,
        "periods": 7,
        "start": "2024-01-08",
        "end": "2024-01-14",
        "model_package_arn": "arn:aws:sagemaker:us-east-1:000000000000:model-package/g/1",
        "wql": 0.0123,
        "wape": 0.0000123,
        "bias": -12345.678,
        "coverage": 0.8,
        "coverage_interval": ["p10", "p90"],
        "registered_wql": 0.0069,
        "by_model_version": {"1": {"items": 3, "wql": 0.0123, "wape": 0.0000123, "bias": 0.5, "coverage": 1.0}},
        "by_attribute": {
            "category": {
                "books": {"items": 1, "wql": 0.00000123, "wape": 0.25, "bias": -0.00002, "coverage": 0.0},
                "toys": {"items": 2, "wql": 0.5, "wape": 1.5, "bias": 3.0, "coverage": 0.75},
            }
        },
    }
    page = monitor_report.html_sections({"accuracy_of_previous_forecasts": scored}, None, None)
    assert "e-0" not in page and "e+0" not in page
    assert "wQL 1.23%, WAPE &lt;0.01%, bias -12,345.68 units a period, p10-p90 coverage 80.00%" in page
    assert "wQL at registration 0.69%" in page
    rows = re.findall(
        r"<tr><td>([^<]*)</td><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", page
    )
    assert [r[0] for r in rows] == ["version 1", "category = books", "category = toys"]
    share, units = re.compile(r"^(&lt;0\.01|\d+\.\d\d)%$"), re.compile(r"^-?[\d,]+\.\d\d$")
    for scope, _items, wql, wape, bias, coverage in rows:
        assert all(share.match(v) for v in (wql, wape, coverage)), (scope, wql, wape, coverage)
        assert units.match(bias), (scope, bias)
    assert rows[1][2:] == ("&lt;0.01%", "25.00%", "0.00", "0.00%")


def test_given_level_shifts_when_rendering_drift_then_levels_and_ratios_have_two_decimals():
    drift = {
        "available": True,
        "training_items": 2,
        "input_items": 2,
        "new_items": [],
        "new_items_count": 0,
        "disappeared_items": [],
        "disappeared_items_count": 0,
        "level_factor": 2.0,
        "level_basis": "mean per period",
        "level_shifts": [
            {"item_id": "a", "training_level": 0.00012, "recent_level": 1234.5, "ratio": 10287500.0},
            {"item_id": "b", "training_level": 10.0, "recent_level": 2.5, "ratio": 0.25},
        ],
        "level_shifts_count": 2,
    }
    page = monitor_report.html_sections({"input_drift": drift}, None, None)
    assert "<td>a</td><td>0.00</td><td>1,234.50</td><td>10,287,500.00</td>" in page
    assert "<td>b</td><td>10.00</td><td>2.50</td><td>0.25</td>" in page
