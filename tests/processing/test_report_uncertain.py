"""The batch report's "Most uncertain items" table: widths a planner can tell apart."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from processing import report
from tests.processing.test_report import make_history


def _section(page: str, title: str) -> str:
    start = page.index(f"<h3>{title}</h3>")
    return page[start : page.index("<h3>", start + 1)]


def test_given_widths_of_2_6_and_4_4_percent_when_rendering_then_the_table_shows_them_in_percent_with_two_decimals(
    tmp_path,
):
    """The shared float format rounded these widths to 0.03 and 0.04."""
    history = make_history()
    history_path = tmp_path / "history.csv"
    history.to_csv(history_path, index=False)
    future = history[history["target_value"].isna()]
    forecasts = pd.DataFrame({"item_id": future["item_id"], "timestamp": future["timestamp"]})
    level = np.array([1000.0 * (int(i[-1]) + 1) for i in forecasts["item_id"]])  # 1,000 .. 4,000 a day
    share = forecasts["item_id"].map({"item0": 0.026, "item1": 0.0444, "item2": 0.0312, "item3": 0.0305})
    forecasts["p50"] = forecasts["mean"] = level
    forecasts["p10"], forecasts["p90"] = level * (1 - share / 2), level * (1 + share / 2)
    (tmp_path / "forecasts").mkdir()
    forecasts.to_csv(tmp_path / "forecasts" / "part-00000.csv.out", index=False)
    out = tmp_path / "report"
    assert (
        report.main(["--forecasts", str(tmp_path / "forecasts"), "--history", str(history_path), "--out", str(out)])
        == 0
    )

    table = _section((out / "report.html").read_text(), "Most uncertain items")
    assert "<th>p10-p90 range, % of p50</th>" in table and "<th>expected demand (units)</th>" in table
    cells = re.findall(r"<td>([^<]*)</td>", table)
    rows = [cells[k : k + 3] for k in range(0, len(cells), 3)]
    assert rows == [
        ["item1", "14,000.00", "4.44%"],
        ["item2", "21,000.00", "3.12%"],
        ["item3", "28,000.00", "3.05%"],
        ["item0", "7,000.00", "2.60%"],
    ]


def test_a_missing_width_shows_a_dash_not_nan():
    html = report._table_html(
        pd.DataFrame([{"item_id": "a", "expected_demand": 12.5, "relative_interval_width": None}]),
        ["p10", "p50", "p90"],
    )
    assert "<td>-</td>" in html and "nan" not in html.lower()
