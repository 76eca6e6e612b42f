"""The local execution summary: champion and challenger side by side (issue 15)."""
from __future__ import annotations

from pipelines.local.report import champion_lines, evaluation_lines

EVALUATION = {
    "quality_gate": {"metric": "WAPE", "value": 0.2, "threshold": 0.3, "passed": True},
    "champion": {"status": "compared", "metric": "WAPE", "version": 4, "challenger_value": 0.2,
                 "champion_value": 0.15, "limit": 0.1575, "tolerance": 0.05, "passed": False,
                 "challenger_metrics": {"wape": 0.2, "wql": 0.17, "mase": None},
                 "champion_metrics": {"wape": 0.15, "wql": 0.12, "mase": 0.8}},
}


def test_given_a_compared_champion_then_the_summary_shows_both_metric_sets_and_the_verdict():
    lines = champion_lines(EVALUATION)
    assert lines[0] == ("  champion (version 4) vs challenger on the same holdout: WAPE 0.15 vs 0.2, limit 0.1575 "
                        "(tolerance 0.05) -> champion stays (challenger not registered)")
    assert lines[2].split() == ["wape", "0.15", "0.2"] and lines[3].split() == ["wql", "0.12", "0.17"]
    assert len(lines) == 4  # mase is undefined for the challenger: not shown
    assert lines[0] in evaluation_lines(EVALUATION)


def test_given_no_champion_then_nothing_is_added():
    assert champion_lines({"champion": {"status": "none"}}) == []
    assert champion_lines({}) == []
