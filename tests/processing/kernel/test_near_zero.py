"""The one near-zero rule the batch report's tables and charts and the evaluation's charts share."""

from __future__ import annotations

import pandas as pd

from processing.kernel import near_zero as rule


def test_given_totals_then_not_positive_or_below_one_percent_of_the_average_is_near_zero():
    totals = pd.Series({"books": 0.05, "toys": 50.0, "games": 100.0, "returns": -1.0, "none": 0.0})
    # average with negatives counted as 0: 150.05 / 5 = 30.01; 1% of it is 0.3001
    assert rule.near_zero_among(totals).to_dict() == {
        "books": True,
        "toys": False,
        "games": False,
        "returns": True,
        "none": True,
    }
    assert rule.near_zero(0.31, 30.01) is False and rule.near_zero(0.3, 30.01) is True
    assert rule.near_zero(5.0, -10.0) is False  # a negative average counts as 0: only <= 0 is near zero


def test_given_a_near_zero_panel_then_its_axis_runs_from_0_to_at_least_one_unit():
    assert rule.near_zero_ylim(0.012) == (0.0, rule.NEAR_ZERO_AXIS_TOP)
    assert rule.near_zero_ylim(3.0) == (0.0, 3.0)  # actuals above one unit stay in view


def test_every_near_zero_user_takes_the_rule_from_the_kernel():
    """One rule in one place: reporting, report_charts and evaluation.plots import it, none redefines it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    for module in ("processing/reporting.py", "processing/report_charts.py", "evaluation/plots.py"):
        text = (root / module).read_text()
        assert "from processing.kernel.near_zero import" in text, module
        assert "NEAR_ZERO_SHARE =" not in text and "NEAR_ZERO_SHARE *" not in text, module
