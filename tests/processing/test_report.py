"""The batch report: tidy table, summary arithmetic, inventory levels, charts, HTML."""

from __future__ import annotations

import json
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from processing import report, reporting
from processing.kernel.near_zero import NEAR_ZERO_AXIS_TOP
from processing.reporting import Columns, ReportInputError

COLUMNS = Columns("item_id", "timestamp", "target_value")
QUANTILES = ["p10", "p50", "p90"]


def make_history(days=60, future=7):
    rows = []
    dates = pd.date_range("2024-01-01", periods=days + future, freq="D")
    for i, (category, region) in enumerate(
        [("toys", "North"), ("toys", "South"), ("books", "North"), ("books", "South")]
    ):
        level = 10.0 * (i + 1)
        for step, day in enumerate(dates):
            rows.append(
                {
                    "item_id": f"item{i}",
                    "timestamp": day.strftime("%Y-%m-%d"),
                    "target_value": level if step < days else np.nan,
                    "category": category,
                    "region": region,
                    "promotion": step % 5 == 0,
                }
            )
    return pd.DataFrame(rows)


def make_forecasts(history, scale=None):
    future = history[history["target_value"].isna()]
    scale = scale or {"item0": 2.0, "item1": 1.0, "item2": 1.0, "item3": 0.5}
    frame = pd.DataFrame({"item_id": future["item_id"], "timestamp": future["timestamp"]})
    base = np.array([10.0 * (int(i[-1]) + 1) * scale[i] for i in frame["item_id"]])
    frame["p10"], frame["p50"], frame["p90"], frame["mean"] = base - 2, base, base + 2, base
    return frame


@pytest.fixture
def report_inputs(tmp_path):
    history = make_history()
    history_path = tmp_path / "history.csv"
    history.to_csv(history_path, index=False)
    forecast_dir = tmp_path / "forecasts"
    forecast_dir.mkdir()
    make_forecasts(history).to_csv(forecast_dir / "part-00000.csv.out", index=False)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "resolved_model.json").write_text(
        json.dumps(
            {
                "model_package_arn": "arn:aws:sagemaker:us-east-1:000000000000:model-package/g/3",
                "metrics": {"wape": 0.1},
            }
        )
    )
    return tmp_path, history_path, forecast_dir, model_dir


def test_given_batch_forecasts_when_reporting_then_every_artifact_is_written_and_totals_match(report_inputs):
    root, history_path, forecast_dir, model_dir = report_inputs
    out = root / "report"
    code = report.main(
        [
            "--forecasts",
            str(forecast_dir),
            "--history",
            str(history_path),
            "--model-dir",
            str(model_dir),
            "--out",
            str(out),
            "--service-level",
            "0.9",
        ]
    )
    assert code == 0
    printed = pd.read_csv(out / "forecasts.csv")
    assert len(printed) == 4 * 7 and printed.groupby("item_id").size().eq(7).all()
    assert list(printed.columns) == ["item_id", "category", "region", "timestamp", "p10", "p50", "p90", "mean"]
    table = pd.read_parquet(out / "forecasts.parquet")  # every digit; the CSV is rounded
    assert table.shape == printed.shape
    for column in ("p10", "p50", "p90", "mean"):
        assert (printed[column] - table[column]).abs().max() <= 0.005 + 1e-9
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items_forecast"] == 4 and summary["horizon"] == 7
    assert summary["model_package_arn"].endswith("/g/3")
    assert summary["rows_made_coherent"] == 0 and summary["near_zero_items"] == 0
    # totals by category equal the table's sums
    for category, sums in summary["totals_by"]["category"].items():
        assert sums["mean"] == pytest.approx(table.loc[table.category == category, "mean"].sum())
    assert summary["total_expected_demand"] == pytest.approx(table["mean"].sum())
    # item0 doubles against its last 7 days (spike), item3 halves (drop)
    assert [s["item_id"] for s in summary["demand_spikes"]] == ["item0"]
    assert summary["demand_spikes"][0]["change"] == pytest.approx(1.0)
    assert [d["item_id"] for d in summary["demand_drops"]] == ["item3"]
    for chart in ("forecast_by_group.png", "top_movers.png"):
        image = matplotlib.image.imread(out / "charts" / chart)
        assert image.shape[0] > 100 and image.std() > 0.01
    page = (out / "report.html").read_text()
    assert "charts/top_movers.png" in page and "Inventory suggestions" in page


@pytest.mark.parametrize(
    "aggregation, factor, total_sigma",
    [
        ("independent", None, 1.5606 * 2),  # root-sum-square: sigma * sqrt(4)
        ("comonotone", None, 1.5606 * 4),  # perfectly correlated: sigma * 4, the sum of the quantiles
        ("calibrated", 1.5, 1.5606 * 2 * 1.5),  # the backtest's factor on the root-sum-square
    ],
)
def test_given_interval_when_suggesting_inventory_then_order_up_to_is_the_normal_quantile_of_the_total(
    aggregation, factor, total_sigma
):
    table = pd.DataFrame(
        {
            "item_id": ["a"] * 4,
            "timestamp": pd.date_range("2024-01-01", periods=4),
            "p10": [8.0] * 4,
            "p50": [10.0] * 4,
            "p90": [12.0] * 4,
            "mean": [10.0] * 4,
        }
    )
    out = reporting.inventory_suggestions(table, COLUMNS, QUANTILES, 0.9, aggregation, factor).iloc[0]
    # per period sigma = 4 / (2 * 1.28155) = 1.5606
    assert out["expected_demand"] == 40.0
    assert out["demand_std"] == pytest.approx(total_sigma, abs=0.01)
    assert out["order_up_to_level"] == pytest.approx(40.0 + 1.28155 * total_sigma, abs=0.01)
    if aggregation == "comonotone":  # each period's 0.9 quantile is p90 = 12: four of them
        assert out["order_up_to_level"] == pytest.approx(4 * 12.0, abs=0.01)


def test_given_a_model_with_or_without_a_spread_factor_then_the_aggregation_is_calibrated_or_the_stated_fallback():
    assert reporting.inventory_aggregation({"horizon_spread_factor": "2.5"})[:2] == ("calibrated", 2.5)
    assert reporting.inventory_aggregation({"horizon_spread_factor": 1.25})[:2] == ("calibrated", 1.25)
    for old in ({}, {"horizon_spread_factor": None}, {"horizon_spread_factor": ""}):  # registered before it existed
        aggregation, factor, basis = reporting.inventory_aggregation(old)
        assert (aggregation, factor) == ("comonotone", None)
        assert "fallback" in basis and "no horizon spread factor" in basis
    for bad in ("nan", "-1", "wide", 0):
        aggregation, factor, basis = reporting.inventory_aggregation({"horizon_spread_factor": bad})
        assert (aggregation, factor) == ("comonotone", None) and "unreadable" in basis


def test_given_service_level_out_of_range_when_suggesting_then_error_names_the_parameter():
    table = make_forecasts(make_history(days=10, future=2))
    for aggregation, factor in (("comonotone", None), ("calibrated", 2.0)):
        with pytest.raises(ReportInputError, match="ServiceLevel 1.2"):
            reporting.inventory_suggestions(table, COLUMNS, QUANTILES, 1.2, aggregation, factor)


def test_given_a_bad_service_level_when_reporting_then_one_line_names_it(report_inputs, capsys):
    root, history_path, forecast_dir, model_dir = report_inputs
    args = ["--forecasts", str(forecast_dir), "--history", str(history_path), "--model-dir", str(model_dir)]
    code = report.main([*args, "--out", str(root / "report"), "--service-level", "0.3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ServiceLevel 0.3 must be in [0.5, 1)" in err
    assert not (root / "report").exists()


@pytest.mark.parametrize("factor", [None, 3.0])
def test_given_the_models_spread_factor_or_none_when_reporting_then_summary_and_page_say_which_sum(
    report_inputs, factor
):
    root, history_path, forecast_dir, model_dir = report_inputs
    resolved = json.loads((model_dir / "resolved_model.json").read_text())
    if factor is not None:
        resolved["horizon_spread_factor"] = factor
    (model_dir / "resolved_model.json").write_text(json.dumps(resolved))
    out = root / "report"
    args = ["--forecasts", str(forecast_dir), "--history", str(history_path), "--model-dir", str(model_dir)]
    assert report.main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    inventory = pd.read_csv(out / "inventory.csv").set_index("item_id")
    page = (out / "report.html").read_text()
    # each period's band is +-2 around the mean: sigma = 4 / 2.563; 7 periods
    sigma = 4.0 / (2 * 1.2815516)
    if factor is None:  # a model registered before the factor existed: comonotone, said so
        assert summary["inventory_aggregation"] == "comonotone" and summary["inventory_spread_factor"] is None
        assert "fallback" in summary["inventory_basis"] and "comonotone (fallback" in page
        assert inventory["demand_std"].tolist() == pytest.approx([7 * sigma] * 4, abs=0.01)
    else:
        assert summary["inventory_aggregation"] == "calibrated" and summary["inventory_spread_factor"] == 3.0
        assert "3.00 x the root-sum-square" in page
        assert inventory["demand_std"].tolist() == pytest.approx([3.0 * np.sqrt(7) * sigma] * 4, abs=0.01)
    assert list(inventory.columns) == [
        "expected_demand",
        "demand_std",
        "safety_stock",
        "order_up_to_level",
        "service_level",
    ]


def test_given_negative_or_flat_zero_forecasts_then_they_are_flagged():
    table = pd.DataFrame(
        {
            "item_id": ["neg", "neg", "zero", "zero", "ok", "ok"],
            "timestamp": list(pd.date_range("2024-01-01", periods=2)) * 3,
            "p10": [-1, 0, 0, 0, 1, 1],
            "p50": [0, 1, 0, 0, 2, 2],
            "p90": [1, 2, 0, 0, 3, 3],
            "mean": [0, 1, 0, 0, 2, 2],
        }
    )
    flagged = {s["item_id"]: s["reasons"] for s in reporting.suspicious_items(table, COLUMNS, QUANTILES)}
    assert flagged == {"neg": ["negative forecast values"], "zero": ["forecast is flat zero"]}


def test_given_forecasts_without_a_quantile_column_then_the_error_names_file_and_column(report_inputs, tmp_path):
    root, history_path, forecast_dir, _ = report_inputs
    bad = make_forecasts(make_history()).drop(columns=["p90"])
    bad.to_csv(forecast_dir / "part-00000.csv.out", index=False)
    with pytest.raises(ReportInputError, match=r"part-00000.csv.out: forecast file lacks column\(s\) \['p90'\]"):
        reporting.read_forecasts(forecast_dir, COLUMNS, QUANTILES)
    out = root / "report"
    assert report.main(["--forecasts", str(forecast_dir), "--history", str(history_path), "--out", str(out)]) == 2
    assert not out.exists()


def test_given_forecasts_with_long_decimals_then_the_csvs_hold_two_decimals_and_the_parquet_all(report_inputs):
    root, history_path, forecast_dir, model_dir = report_inputs
    frame = pd.read_csv(forecast_dir / "part-00000.csv.out")
    for column in ("p10", "p50", "p90", "mean"):
        frame[column] = frame[column] + 0.123456789
    frame.to_csv(forecast_dir / "part-00000.csv.out", index=False)
    out = root / "report"
    assert (
        report.main(
            [
                "--forecasts",
                str(forecast_dir),
                "--history",
                str(history_path),
                "--model-dir",
                str(model_dir),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in ("forecasts.csv", "inventory.csv"):
        body = (out / name).read_text().splitlines()[1:]
        decimals = [
            len(cell.split(".")[1])
            for line in body
            for cell in line.split(",")
            if cell.replace(".", "", 1).replace("-", "", 1).isdigit() and "." in cell
        ]
        assert decimals and max(decimals) <= 2, name
    assert (pd.read_parquet(out / "forecasts.parquet")["mean"] % 0.01).round(6).ne(0).any()


def test_given_no_matplotlib_when_reporting_then_tables_and_page_are_written_without_charts(
    report_inputs, monkeypatch, capsys
):
    """The step's optional install failed (a VPC without internet access): the report still does its job."""
    import processing

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    monkeypatch.setitem(sys.modules, "processing.report_charts", None)
    monkeypatch.delattr(processing, "report_charts", raising=False)
    root, history_path, forecast_dir, model_dir = report_inputs
    out = root / "report"
    code = report.main(
        [
            "--forecasts",
            str(forecast_dir),
            "--history",
            str(history_path),
            "--model-dir",
            str(model_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "[report] charts not drawn: " in printed and "(no charts)" in printed
    assert {p.name for p in out.iterdir()} == {
        "forecasts.csv",
        "forecasts.parquet",
        "inventory.csv",
        "summary.json",
        "report.html",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["charts_note"].startswith("charts not drawn: ") and summary["items_forecast"] == 4
    page = (out / "report.html").read_text()
    assert "<img" not in page and "Charts not drawn: " in page and "Inventory suggestions" in page


def test_given_forecasts_for_fewer_items_than_the_batch_input_then_the_report_fails_naming_them(tmp_path, capsys):
    """Leading zeros lost on the way ('007' forecast as 7) must not pass as a complete batch run."""
    history = make_history(days=20, future=3)
    history["item_id"] = history["item_id"].map({"item0": "007", "item1": "7", "item2": "0042", "item3": "42"})
    history.to_csv(tmp_path / "history.csv", index=False)
    forecasts = make_forecasts(history.assign(item_id=history["item_id"].str.lstrip("0")), scale={"7": 1.0, "42": 1.0})
    forecasts.drop_duplicates(["item_id", "timestamp"]).to_csv(tmp_path / "part-00000.csv.out", index=False)
    code = report.main(
        [
            "--forecasts",
            str(tmp_path / "part-00000.csv.out"),
            "--history",
            str(tmp_path / "history.csv"),
            "--out",
            str(tmp_path / "report"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "2 of 4 series in the batch input" in err and "'007'" in err and "'0042'" in err
    assert not (tmp_path / "report").exists()


def test_given_incoherent_rows_when_made_coherent_then_quantiles_are_sorted_and_the_mean_is_inside():
    table = pd.DataFrame(
        {
            "item_id": ["a", "a", "b"],
            "p10": [8.0, 12.0, 1.0],
            "p50": [10.0, 10.0, 2.0],
            "p90": [12.0, 8.0, 3.0],
            "mean": [13.0, 10.0, 2.5],
        }
    )
    fixed, changed = reporting.coherent(table, QUANTILES)
    assert changed == 2  # row 0: mean above p90; row 1: crossing quantiles; row 2 untouched
    assert fixed["mean"].tolist() == [12.0, 10.0, 2.5]
    assert fixed[["p10", "p50", "p90"]].values.tolist() == [[8, 10, 12], [8, 10, 12], [1, 2, 3]]


def test_given_a_coherent_distribution_when_suggesting_inventory_then_order_up_to_covers_the_mean_and_band():
    # mean 10 inside p10 8 / p90 14 (skewed): safety stock positive, order-up-to above expected demand
    table = pd.DataFrame(
        {
            "item_id": ["a"] * 7,
            "timestamp": pd.date_range("2024-01-01", periods=7),
            "p10": [8.0] * 7,
            "p50": [9.5] * 7,
            "p90": [14.0] * 7,
            "mean": [10.0] * 7,
        }
    )
    out = reporting.inventory_suggestions(table, COLUMNS, QUANTILES, 0.95, "independent").iloc[0]
    sigma = 6.0 / (2 * 1.281552)
    assert out["expected_demand"] == 70.0
    assert out["demand_std"] == pytest.approx(sigma * np.sqrt(7), abs=0.01)
    assert out["safety_stock"] == pytest.approx(1.644854 * sigma * np.sqrt(7), abs=0.01)
    assert out["order_up_to_level"] == pytest.approx(out["expected_demand"] + out["safety_stock"], abs=0.01)


def test_given_a_near_zero_item_when_totalling_then_its_relative_width_is_left_out():
    table = pd.DataFrame(
        {
            "item_id": ["zero"] * 2 + ["tiny"] * 2 + ["big"] * 2,
            "p10": [0.0, 0.0, 0.0, 0.0, 80.0, 90.0],
            "p50": [0.0, 0.0, 0.2, 0.1, 100.0, 100.0],
            "p90": [0.3, 0.2, 2.0, 2.0, 120.0, 110.0],
            "mean": [0.1, 0.1, 0.5, 0.5, 100.0, 100.0],
        }
    )
    totals = reporting.item_totals(table, COLUMNS, QUANTILES).set_index("item_id")
    assert totals.loc["zero", "near_zero"] and totals.loc["tiny", "near_zero"] and not totals.loc["big", "near_zero"]
    assert np.isnan(totals.loc["zero", "relative_interval_width"])
    assert np.isnan(totals.loc["tiny", "relative_interval_width"])
    assert totals.loc["big", "relative_interval_width"] == pytest.approx(60.0 / 200.0)


def test_given_near_zero_items_when_ranking_relative_demand_then_they_are_left_out():
    # a category of books forecast at ~0.01 a day ranked its items 3x "their category" (noise)
    table = pd.DataFrame(
        {
            "item_id": ["book_a", "book_b", "laptop_a", "laptop_b"],
            "p10": [0.0, 0.0, 90.0, 190.0],
            "p50": [0.001, 0.01, 100.0, 200.0],
            "p90": [0.01, 0.05, 110.0, 210.0],
            "mean": [0.002, 0.012, 100.0, 200.0],
        }
    )
    statics = pd.DataFrame({"item_id": table["item_id"], "category": ["books", "books", "pcs", "pcs"]})
    totals = reporting.item_totals(table, COLUMNS, QUANTILES)
    relative = reporting.relative_to_group(totals, statics, COLUMNS, "category").set_index("item_id")
    assert sorted(relative.index) == ["laptop_a", "laptop_b"]
    assert relative.loc["laptop_b", "relative_demand"] == pytest.approx(200.0 / 150.0)


def test_given_a_forecast_far_outside_recent_history_then_it_is_flagged_and_a_small_one_is_not():
    days = pd.date_range("2024-01-01", periods=30)
    history = pd.DataFrame(
        {
            "item_id": ["books"] * 30 + ["toys"] * 30 + ["calm"] * 30,
            "timestamp": list(days) * 3,
            "target_value": [0.0] * 30 + [10.0, 14.0] * 15 + [0.0] * 30,
        }
    )
    recent = reporting.recent_history(history, COLUMNS)
    future = pd.date_range("2024-01-31", periods=3)
    table = pd.DataFrame(
        {
            "item_id": ["books"] * 3 + ["toys"] * 3 + ["calm"] * 3,
            "timestamp": list(future) * 3,
            "p10": [0, 0, 0, 9, 9, 9, 0, 0, 0],
            "p50": [0, 9, 0, 12, 13, 12, 0, 0, 0],
            "p90": [1, 12, 1, 15, 17, 16, 0.2, 1, 0.4],
            "mean": [0.3, 9, 0.3, 12, 13, 12, 0, 0.5, 0.1],
        }
    )
    flagged = {s["item_id"]: s["reasons"] for s in reporting.suspicious_items(table, COLUMNS, QUANTILES, recent)}
    assert list(flagged) == ["books"]  # toys inside its range, calm's 0.5 within the 1-unit tolerance
    assert "forecast up to 9 against a recent range of 0 to 0" in flagged["books"][0]
    # a flat-zero forecast after a history of zeros is what it should be, not suspicious
    zeros = table.assign(p10=0.0, p50=0.0, p90=0.0, mean=0.0)
    assert "calm" not in {s["item_id"] for s in reporting.suspicious_items(zeros, COLUMNS, QUANTILES, recent)}
    assert "toys" in {s["item_id"] for s in reporting.suspicious_items(zeros, COLUMNS, QUANTILES, recent)}


def test_given_more_groups_than_panels_when_charting_then_only_the_largest_groups_are_drawn(tmp_path):
    from processing import report_charts

    groups = report_charts.MAX_PANELS + 8
    days = pd.date_range("2024-01-01", periods=3)
    table = pd.DataFrame(
        [
            {"item_id": f"i{g}", "store": f"s{g:02d}", "timestamp": d, "p10": g, "p90": g + 2.0, "mean": g + 1.0}
            for g in range(groups)
            for d in days
        ]
    )
    history = table[["item_id", "store", "timestamp"]].assign(target_value=1.0)
    out = report_charts.forecast_by_group(
        table, history, "store", "timestamp", "target_value", "p10", "p90", tmp_path / "g.png"
    )
    height = matplotlib.image.imread(out).shape[0]
    assert height == round(2.6 * report_charts.MAX_PANELS * 110)  # one panel per drawn group, MAX_PANELS of them


def test_given_a_missing_central_value_when_checking_suspicious_then_the_range_test_does_not_apply():
    table = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "b"],
            "p10": [90.0, 90.0, 90.0, 90.0],
            "p50": [100.0, np.nan, 100.0, 100.0],
            "p90": [110.0, 110.0, 110.0, 110.0],
            "mean": [100.0, 100.0, 100.0, 100.0],
        }
    )
    recent = pd.DataFrame({"low": [1.0, 1.0], "high": [2.0, 2.0], "level": [1.5, 1.5]}, index=["a", "b"])
    found = reporting.suspicious_items(table, COLUMNS, QUANTILES, recent)
    assert found == [{"item_id": "b", "reasons": ["forecast up to 100 against a recent range of 1 to 2"]}]


def test_given_a_near_zero_group_when_charting_then_its_panel_says_so_and_its_axis_starts_at_0_and_reaches_1(
    tmp_path, monkeypatch
):
    """A books forecast of ~0.01 a day, autoscaled, drew a band as wide as a real group's."""
    from processing import report_charts

    drawn = {}
    save = report_charts._save

    def keep_axes(fig, out):  # the panels as drawn, before the figure is closed
        drawn.update({ax.get_title(loc="left"): ax.get_ylim() for ax in fig.axes})
        return save(fig, out)

    monkeypatch.setattr(report_charts, "_save", keep_axes)
    days = pd.date_range("2024-01-01", periods=7)
    rows = [("books", 0.005, 0.01, 0.02), ("toys", 40.0, 50.0, 60.0), ("games", 20.0, 25.0, 30.0)]
    table = pd.DataFrame(
        [
            {"item_id": g, "category": g, "timestamp": d, "p10": lo, "p90": hi, "mean": mean}
            for g, lo, mean, hi in rows
            for d in days
        ]
    )
    history = table[["item_id", "category", "timestamp"]].assign(
        timestamp=lambda f: f["timestamp"] - pd.Timedelta(days=7), target_value=0.0
    )
    report_charts.forecast_by_group(
        table, history, "category", "timestamp", "target_value", "p10", "p90", tmp_path / "g.png"
    )
    books = [title for title in drawn if title.startswith("books")]
    assert books == ["books (near zero: forecast below 1% of the average panel's; axis from 0)"]
    assert drawn[books[0]][0] == 0 and drawn[books[0]][1] >= NEAR_ZERO_AXIS_TOP
    assert "toys" in drawn and "games" in drawn  # the others keep their plain title and own axis
    assert drawn["toys"][1] > 60


def _static_attributes_by_groupby(history, columns):
    """The definition static_attributes computes by arrays: constant per item, then the first value."""
    candidates = [
        c
        for c in history.columns
        if c not in (columns.item_id, columns.timestamp, columns.target, *columns.grouping)
        and not pd.api.types.is_numeric_dtype(history[c])
    ]
    per_item = history.groupby(columns.item_id)[candidates].nunique(dropna=False)
    constant = [c for c in candidates if (per_item[c] <= 1).all()]
    return history.groupby(columns.item_id, as_index=False)[constant].first()


def test_given_shuffled_rows_with_missing_values_then_static_attributes_are_the_groupby_ones():
    rng = np.random.default_rng(3)
    for trial in range(100):
        n = int(rng.integers(1, 40))
        frame = pd.DataFrame(
            {
                "item_id": rng.choice(["a", "b", "007", None], n),
                "timestamp": np.arange(n),
                "target_value": rng.random(n),
            }
        )
        frame["category"] = frame["item_id"].map({"a": "A", "b": None, "007": "Z"})  # constant per item
        pool = [["x"], ["x", "y"], ["x", None], [None]][trial % 4]
        frame["region"] = [pool[int(rng.integers(0, len(pool)))] for _ in range(n)]
        if trial % 2:
            frame = frame.sort_values("item_id", kind="stable").reset_index(drop=True)
        expected = _static_attributes_by_groupby(frame, COLUMNS)
        pd.testing.assert_frame_equal(
            reporting.static_attributes(frame, COLUMNS), expected, check_dtype=False, check_index_type=False
        )


def test_given_unsorted_history_then_the_last_period_totals_use_the_latest_rows():
    history = make_history(days=10, future=0).sample(frac=1.0, random_state=0)
    history["timestamp"] = pd.to_datetime(history["timestamp"])
    history.loc[history["timestamp"] == history["timestamp"].max(), "target_value"] = 100.0
    totals = reporting.last_period_totals(history, COLUMNS, horizon=1)
    assert (totals == 100.0).all() and len(totals) == 4


def test_given_the_history_parquet_of_prepare_batch_input_then_it_reads_as_its_shards_do(tmp_path):
    from processing import batch_input

    history = make_history(days=20, future=3)
    history["item_id"] = history["item_id"].str.replace("item", "00")  # ids that look like numbers
    history.loc[3, "category"] = None  # a missing text
    history.loc[5, "target_value"] = np.nan  # a gap in the history
    history.to_csv(tmp_path / "input.csv", index=False)
    argv = ["--input", str(tmp_path / "input.csv"), "--output-dir", str(tmp_path / "shards")]
    assert batch_input.main(argv + ["--history-dir", str(tmp_path / "history"), "--items-per-file", "2"]) == 0
    assert (tmp_path / "history" / batch_input.HISTORY_FILE).is_file()
    for grouping in ((), ("region",)):
        columns = Columns("item_id", "timestamp", "target_value", grouping)
        from_shards = report.read_history(tmp_path / "shards", columns)
        from_parquet = report.read_history(tmp_path / "history", columns)
        pd.testing.assert_frame_equal(from_parquet, from_shards, check_exact=True)
    assert from_parquet["item_id"].iloc[0] == "000"


def test_given_many_transform_outputs_then_they_read_as_one_table_in_item_order(tmp_path):
    history = make_history(days=5, future=3)
    forecasts = make_forecasts(history)
    folder = tmp_path / "forecasts"
    folder.mkdir()
    for k, item in enumerate(["item3", "item1", "item0", "item2"]):  # files not in item order
        forecasts[forecasts["item_id"] == item].to_csv(folder / f"part-{k:05d}.csv.out", index=False)
    table = reporting.read_forecasts(folder, COLUMNS, QUANTILES)
    assert table["item_id"].tolist() == sorted(forecasts["item_id"].tolist())
    assert table["p90"].sum() == pytest.approx(forecasts["p90"].sum())
    (folder / "part-00002.csv.out").write_text("item_id,timestamp,p10,p50,p90\nitem0,2024-01-06,1,2,3\n")
    with pytest.raises(ReportInputError, match=r"part-00002\.csv\.out: forecast file lacks column\(s\) \['mean'\]"):
        reporting.read_forecasts(folder, COLUMNS, QUANTILES)


def _as_categorical(frame, columns, rng):
    """Text columns as categoricals whose categories are shuffled and include unused values (the
    lean history's kind of column, in an order the text's own does not follow)."""
    out = frame.copy()
    for c in columns:
        present = [v for v in pd.unique(frame[c]) if isinstance(v, str)]
        categories = list(rng.permutation(present + ["zz-unused", "0-unused"]))
        out[c] = pd.Categorical(frame[c], categories=categories)
    return out


def test_given_categorical_text_columns_then_the_per_item_summaries_are_those_of_plain_text():
    """The lean history keeps text categorical: every per-item result is the plain-text one."""
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(2, 60))
        frame = pd.DataFrame(
            {
                "item_id": rng.choice(np.array(["b", "a", "007", "7", np.nan], dtype=object), n),
                "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 20, n), unit="D"),
                "target_value": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            }
        )
        frame["category"] = frame["item_id"].map({"a": "A", "b": np.nan, "007": "Z", "7": "Z"})  # missing: NaN
        frame["region"] = [["x", "y", np.nan][int(rng.integers(0, 3))] for _ in range(n)]  # as the CSV reads
        if trial % 2:  # the batch input's order: by item, then time
            frame = frame.sort_values(["item_id", "timestamp"], kind="stable").reset_index(drop=True)
        lean = _as_categorical(frame, ["item_id", "category", "region"], rng)
        pd.testing.assert_frame_equal(
            reporting.static_attributes(lean, COLUMNS), reporting.static_attributes(frame, COLUMNS)
        )
        observed, observed_lean = reporting.observed_history(frame, COLUMNS), reporting.observed_history(lean, COLUMNS)
        pd.testing.assert_frame_equal(observed_lean.astype({"item_id": object}), observed)
        for periods in (1, 3):
            pd.testing.assert_series_equal(
                reporting.last_period_totals(lean, COLUMNS, periods, observed_lean),
                reporting.last_period_totals(frame, COLUMNS, periods, observed),
            )
            pd.testing.assert_frame_equal(
                reporting.recent_history(lean, COLUMNS, periods, observed_lean),
                reporting.recent_history(frame, COLUMNS, periods, observed),
            )


def test_given_the_history_parquet_then_the_report_is_the_one_from_its_shards(tmp_path):
    """Report reads history.parquet lean (text categorical, no numeric attributes): the same files."""
    from processing import batch_input

    history = make_history(days=30, future=7)
    history["item_id"] = history["item_id"].str.replace("item", "00")  # ids that look like numbers
    history.loc[3, "region"] = None  # a missing text: region is no longer constant for that item
    history.loc[[5, 40], "target_value"] = np.nan  # gaps in the history
    history.to_csv(tmp_path / "input.csv", index=False)
    argv = ["--input", str(tmp_path / "input.csv"), "--output-dir", str(tmp_path / "shards")]
    assert batch_input.main(argv + ["--history-dir", str(tmp_path / "history"), "--items-per-file", "2"]) == 0
    lean = report.read_history(tmp_path / "history", COLUMNS, lean=True)
    assert isinstance(lean["item_id"].dtype, pd.CategoricalDtype) and "promotion" not in lean.columns
    forecasts = tmp_path / "forecasts"
    forecasts.mkdir()
    make_forecasts(history, scale={"000": 2.0, "001": 1.0, "002": 1.0, "003": 0.5}).to_csv(
        forecasts / "part-00000.csv.out", index=False
    )
    for source in ("history", "shards"):
        code = report.main(
            ["--forecasts", str(forecasts), "--history", str(tmp_path / source), "--out", str(tmp_path / f"r-{source}")]
        )
        assert code == 0
    for name in ("forecasts.csv", "inventory.csv", "summary.json", "report.html"):
        assert (tmp_path / "r-history" / name).read_bytes() == (tmp_path / "r-shards" / name).read_bytes(), name
    summary = json.loads((tmp_path / "r-history" / "summary.json").read_text())
    assert list(summary["totals_by"]) == ["category"] and summary["demand_spikes"][0]["item_id"] == "000"


def _moves(changes):
    return pd.DataFrame({"item_id": [f"item{k}" for k in range(len(changes))], "change": changes})


def test_given_only_rises_when_charting_top_movers_then_no_rise_is_drawn_as_a_fall_and_the_title_says_no_item_falls():
    """With nothing falling, the 10 smallest rises were drawn (in the rises' colour) as the falls."""
    from processing import report_charts

    changes = [0.033 - 0.001 * k for k in range(25)]  # 25 rises of 0.9% to 3.3%, the walkthrough's
    fig = report_charts.top_movers_figure(_moves(changes), "item_id", limit=10)
    axis = fig.axes[0]
    widths = [bar.get_width() for bar in axis.patches]
    assert len(widths) == 10 and min(widths) == pytest.approx(2.4)  # the 10 largest rises only
    assert axis.get_title(loc="left") == "Top movers: the 10 largest rises, no item falls"
    labels = [text.get_text() for text in axis.texts]
    assert labels[0] == "+2.4%" and labels[-1] == "+3.3%"  # one decimal: +2.4% and +2.9% stay apart


def test_given_rises_and_falls_when_splitting_movers_then_each_side_holds_its_sign_only():
    from processing import report_charts

    rises, falls = report_charts.split_movers(_moves([0.8, -0.1, 0.0, None, -0.45, 0.02]), limit=10)
    assert rises["item_id"].tolist() == ["item0", "item5"]  # largest first; no change is neither side
    assert falls["item_id"].tolist() == ["item4", "item1"]
    assert report_charts.movers_title(rises, falls) == "Top movers: the 2 largest rises, the 2 largest falls"
    assert report_charts.movers_title(rises.iloc[:0], falls) == "Top movers: no item rises, the 2 largest falls"
    fig = report_charts.top_movers_figure(_moves([None, 0.0]), "item_id")
    assert fig.axes[0].get_title(loc="left").startswith("Top movers: no item rises or falls")
    assert not fig.axes[0].patches


def test_given_no_drops_when_rendering_then_the_drops_table_says_no_item_falls(report_inputs):
    root, history_path, forecast_dir, model_dir = report_inputs
    out = root / "report"
    report.main(["--forecasts", str(forecast_dir), "--history", str(history_path), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    summary["demand_drops"] = []
    page = report.render_html(summary, pd.read_csv(out / "inventory.csv"), [], out)
    assert "<h3>Demand drops</h3><p>None: no item falls by more than 25%.</p>" in page
