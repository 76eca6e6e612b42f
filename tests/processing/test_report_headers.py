"""The batch report's tables read for a planner: named columns with units, one number format each."""

from __future__ import annotations

import re

import pandas as pd

from processing import report
from tests.processing.test_report import report_inputs  # noqa: F401 - fixture


def tables(page: str) -> dict:
    """{section title: (headers, rows of cells)} for every table on the page."""
    found = {}
    for title, table in re.findall(r"<h[23]>([^<]*)</h[23]>\s*(?:<p>.*?</p>\s*)?(<table.*?</table>)", page, re.S):
        headers = [h.strip() for h in re.findall(r"<th[^>]*>([^<]*)</th>", table)]
        rows = [
            [c.strip() for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
        ]
        found[title] = (headers, [r for r in rows if r])
    return found


def test_every_table_has_readable_headers_and_a_format_per_column(report_inputs):  # noqa: F811
    root, history_path, forecast_dir, model_dir = report_inputs
    out = root / "report"
    args = ["--forecasts", str(forecast_dir), "--history", str(history_path), "--out", str(out)]
    assert report.main([*args, "--model-dir", str(model_dir)]) == 0

    found = tables((out / "report.html").read_text())

    headers, rows = found["Inventory suggestions (top 25 by order-up-to level)"]
    assert headers == [
        "item_id",
        "expected demand (units)",
        "demand std. dev. (units)",
        "safety stock (units)",
        "order-up-to level (units)",
        "service level",
    ]
    assert rows[0][0] == "item2" and rows[0][1] == "210.00" and rows[0][-1] == "90.00%"
    assert all(re.fullmatch(r"[0-9,]+\.[0-9]{2}", cell) for row in rows for cell in row[1:-1])

    headers, rows = found["Totals by category"]
    assert headers == [
        "category",
        "expected demand (units)",
        "p10, summed (units)",
        "p50, summed (units)",
        "p90, summed (units)",
    ]
    assert rows[0][0] == "books" and all(re.fullmatch(r"[0-9,]+\.[0-9]{2}", c) for c in rows[0][1:])

    headers, rows = found["Demand spikes"]
    assert headers == ["item_id", "expected demand (units)", "last comparable period (units)", "change vs last period"]
    assert rows == [["item0", "140.00", "70.00", "100.00%"]]
    headers, rows = found["Demand drops"]
    assert rows == [["item3", "140.00", "280.00", "-50.00%"]]

    headers, rows = found["Highest demand relative to category"]
    assert headers == ["item_id", "category", "expected demand (units)", "% of the category average"]
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}%", row[-1]) for row in rows)

    machine = {"expected_demand", "relative_demand", "order_up_to_level", "service_level", "change", "mean"}
    assert not machine & {h for headers, _ in found.values() for h in headers}
    # the files keep their machine column names
    inventory = pd.read_csv(out / "inventory.csv")
    assert {"expected_demand", "order_up_to_level", "service_level"} <= set(inventory.columns)


def test_a_table_shows_a_tiny_change_as_not_zero_and_never_minus_zero_units():
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "expected_demand": [-0.001, 7000.0],
            "change": [-0.00001, 0.0],
            "demand_std": [1.0, None],
        }
    )
    cells = re.findall(r"<td>([^<]*)</td>", report._table_html(frame, ["p10", "p50", "p90"]))
    assert cells == ["a", "0.00", "-&lt;0.01%", "1.00", "b", "7,000.00", "0.00%", "-"]
