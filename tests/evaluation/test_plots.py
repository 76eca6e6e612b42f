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
