"""The training pipeline's gates told in words (the run output), from the conditions it renders."""

from __future__ import annotations

import pytest

from pipelines.local import condition_text
from pipelines.local import expressions as ex
from pipelines.local.executors import describe_condition
from processing.kernel import contracts

REPORT = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}


def read(path: str) -> dict:
    return {"Std:JsonGet": {"PropertyFile": REPORT, "Path": path}}


QUALITY_GATE = [
    {
        "Type": "LessThanOrEqualTo",
        "LeftValue": read(contracts.QUALITY_GATE_VALUE_PATH),
        "RightValue": {"Get": "Parameters.QualityThreshold"},
    }
]
CHAMPION_GATE = [  # pipelines.training.champion_gate_step's condition
    {
        "Type": "Or",
        "Conditions": [
            {
                "Type": "Not",
                "Condition": {
                    "Type": "Equals",
                    "LeftValue": read(contracts.CHAMPION_STATUS_PATH),
                    "RightValue": "compared",
                },
            },
            {
                "Type": "LessThanOrEqualTo",
                "LeftValue": read(contracts.CHAMPION_CHALLENGER_VALUE_PATH),
                "RightValue": read(contracts.CHAMPION_LIMIT_PATH),
            },
        ],
    }
]


def context(evaluation: dict, threshold: float = 0.3) -> ex.Context:
    return ex.Context(
        parameters={"QualityThreshold": threshold},
        execution={"PipelineExecutionId": "abc"},
        property_file=lambda step, name: (evaluation, "/store/evaluation.json"),
        step_names=("Evaluate",),
        current_step="Gate",
    )


def told(conditions: list, ctx: ex.Context, taken: list) -> str:
    return condition_text.summary(conditions, ex.evaluate_conditions(conditions, ctx), taken, ctx)


def test_the_quality_gate_names_the_metric_and_shows_shares_in_percent():
    passing = context({"quality_gate": {"metric": "WAPE", "value": 0.009874750771727883}})
    failing = context({"quality_gate": {"metric": "WAPE", "value": 0.4123}})

    assert told(QUALITY_GATE, passing, ["ChampionGate"]) == "WAPE 0.99% <= QualityThreshold 30.00% -> ChampionGate"
    assert told(QUALITY_GATE, failing, ["QualityTooLow"]) == "WAPE 41.23% > QualityThreshold 30.00% -> QualityTooLow"


def test_a_metric_that_is_no_share_keeps_two_decimals():
    ctx = context({"quality_gate": {"metric": "MASE", "value": 0.7262}}, threshold=1.0)
    assert told(QUALITY_GATE, ctx, ["ChampionGate"]) == "MASE 0.73 <= QualityThreshold 1.00 -> ChampionGate"


@pytest.mark.parametrize(
    "champion, expected",
    [
        (
            {"status": "none", "metric": "WAPE", "challenger_value": 0.0099, "limit": 0.0},
            "no champion to compare -> RegisterModel, Deploy",
        ),
        (
            {"status": "compared", "metric": "WAPE", "challenger_value": 0.0099, "limit": 0.0123},
            "WAPE 0.99% <= champion's WAPE x (1 + ChallengerTolerance) 1.23% -> RegisterModel, Deploy",
        ),
        (
            {"status": "compared", "metric": "WAPE", "challenger_value": 0.0150, "limit": 0.0123},
            "champion scored on the same holdout and WAPE 1.50% > champion's WAPE x (1 + ChallengerTolerance) 1.23% -> ChallengerLost",
        ),
    ],
)
def test_the_champion_gate_says_which_part_decided(champion, expected):
    ctx = context({"champion": champion})
    taken = ["RegisterModel", "Deploy"] if ex.evaluate_conditions(CHAMPION_GATE, ctx) else ["ChallengerLost"]
    assert told(CHAMPION_GATE, ctx, taken) == expected
    # the expression with every value is still there for the step log
    assert describe_condition(CHAMPION_GATE[0], ctx).startswith("Or(Not(Equals(")


def test_an_unresolvable_operand_still_gives_the_outcome():
    ctx = context({})
    assert condition_text.summary(QUALITY_GATE, False, ["QualityTooLow"], ctx) == (
        "conditions do not hold -> QualityTooLow"
    )
