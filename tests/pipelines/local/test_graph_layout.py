"""The pipeline graph drawing shared by the HTML report and the Studio."""

from __future__ import annotations

import re

import pytest

from pipelines.local import graph_layout

TRAINING = [  # the training pipeline's steps and dependencies as the runtime records them
    ("PrepareData", "Processing", []),
    ("AutoML", "Processing", ["PrepareData"]),
    ("BacktestForecast", "Transform", ["AutoML", "PrepareData"]),
    ("Evaluate", "Processing", ["PrepareData", "BacktestForecast"]),
    ("QualityGate", "Condition", ["Evaluate"]),
    ("RegisterModel", "Processing", ["AutoML", "Evaluate", "QualityGate"]),
    ("Deploy", "Lambda", ["RegisterModel", "QualityGate"]),
    ("QualityTooLow", "Fail", ["Evaluate", "QualityGate"]),
]
BATCH = [
    ("ResolveModel", "Processing", []),
    ("PrepareBatchInput", "Processing", []),
    ("CreateModel", "Processing", ["ResolveModel"]),
    ("BatchForecast", "Transform", ["CreateModel", "PrepareBatchInput"]),
    ("Report", "Processing", ["BatchForecast", "ResolveModel", "PrepareBatchInput"]),
]
BRANCHES = {
    "RegisterModel": ("QualityGate", "IfSteps"),
    "Deploy": ("QualityGate", "IfSteps"),
    "QualityTooLow": ("QualityGate", "ElseSteps"),
}


def steps(spec, status="Succeeded", **extra):
    return [
        dict(
            {"name": n, "type": t, "depends_on": d, "status": status, "duration_seconds": 12.5, "outputs": {}},
            **extra.get(n, {}),
        )
        for n, t, d in spec
    ]


def inside(point, box, margin=0.5):
    x, y, w, h = box
    return x + margin < point[0] < x + w - margin and y + margin < point[1] < y + h - margin


def sampled(points, per_segment=20):
    """Points along the polyline through the edge's points (its cubic segments stay within it)."""
    out = []
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        out += [(x1 + (x2 - x1) * t / per_segment, y1 + (y2 - y1) * t / per_segment) for t in range(per_segment + 1)]
    return out


def test_given_the_training_graph_when_laid_out_then_it_fits_a_1200_px_page():
    placed = graph_layout.layout(steps(TRAINING))
    assert placed["width"] <= 1200 - 2 * 32  # the report's body margins
    assert set(placed["nodes"]) == {n for n, _, _ in TRAINING}
    svg = graph_layout.graph_svg(steps(TRAINING), BRANCHES)
    assert 'style="max-width:100%;height:auto"' in svg and "viewBox=" in svg


@pytest.mark.parametrize("spec", [TRAINING, BATCH], ids=["training", "batch"])
def test_given_a_graph_when_laid_out_then_every_edge_starts_under_its_source_and_lands_on_top_of_its_target(spec):
    placed = graph_layout.layout(steps(spec))
    nodes = placed["nodes"]
    for source, target, points in placed["edges"]:
        sx, sy, sw, sh = nodes[source]
        tx, ty, tw, th = nodes[target]
        assert points[0][1] == sy + sh and sx < points[0][0] < sx + sw, (source, target)
        assert points[-1][1] == ty and tx < points[-1][0] < tx + tw, (source, target)


@pytest.mark.parametrize("spec", [TRAINING, BATCH], ids=["training", "batch"])
def test_given_a_graph_when_laid_out_then_no_edge_runs_under_a_box_it_does_not_connect(spec):
    placed = graph_layout.layout(steps(spec))
    for source, target, points in placed["edges"]:
        for name, box in placed["nodes"].items():
            if name in (source, target):
                continue
            assert not any(inside(p, box) for p in sampled(points)), f"{source}->{target} crosses {name}"


def test_given_the_batch_graph_then_the_edge_from_prepare_batch_input_ends_on_batch_forecast_not_create_model():
    placed = graph_layout.layout(steps(BATCH))
    nodes = placed["nodes"]
    edge = next(p for s, t, p in placed["edges"] if s == "PrepareBatchInput")
    assert [t for s, t, _ in placed["edges"] if s == "PrepareBatchInput"] == ["BatchForecast"]
    cx, cy, cw, ch = nodes["CreateModel"]
    assert not any(inside(p, nodes["CreateModel"], margin=-4) for p in sampled(edge))
    # the two arrows into BatchForecast arrive side by side, in the order of their sources
    arrivals = sorted((p[-1][0], s) for s, t, p in placed["edges"] if t == "BatchForecast")
    assert len({x for x, _ in arrivals}) == 2


def test_given_transitive_dependencies_then_only_the_direct_ones_are_drawn():
    reduced = graph_layout.drawn_dependencies(steps(TRAINING))
    assert reduced["Evaluate"] == ["BacktestForecast"]
    assert reduced["RegisterModel"] == ["QualityGate"]
    assert reduced["Deploy"] == ["RegisterModel"]


def test_given_the_gate_passed_then_the_if_branch_is_drawn_taken_and_the_else_branch_faint():
    recorded = steps(
        TRAINING,
        **{
            "QualityGate": {"outputs": {"Outcome": True}},
            "QualityTooLow": {"status": "NotExecuted", "duration_seconds": None},
        },
    )
    svg = graph_layout.graph_svg(recorded, BRANCHES)
    taken = re.search(r'data-from="QualityGate" data-to="RegisterModel"[^>]*', svg).group(0)
    skipped = re.search(r'data-from="QualityGate" data-to="QualityTooLow"[^>]*', svg).group(0)
    assert 'stroke="#2e7d32"' in taken and "dasharray" not in taken
    assert "stroke-dasharray" in skipped and "arrow-faint" in skipped
    assert "if true (taken)" in svg and "else (not taken)" in svg


def test_given_an_older_record_without_the_definition_then_the_branch_comes_from_the_runtime_note():
    recorded = steps(
        TRAINING,
        **{
            "QualityGate": {"outputs": {"Outcome": False}},
            "RegisterModel": {"status": "NotExecuted", "note": "branch not taken (IfSteps of QualityGate)"},
        },
    )
    svg = graph_layout.graph_svg(recorded)
    assert "if true (not taken)" in svg


def test_given_a_definition_then_branches_lists_each_branch_step_with_its_condition():
    definition = {
        "Steps": [
            {"Name": "A", "Type": "Processing"},
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "IfSteps": [{"Name": "B", "Type": "Processing"}],
                    "ElseSteps": [{"Name": "C", "Type": "Fail"}],
                },
            },
        ]
    }
    assert graph_layout.branches(definition) == {"B": ("Gate", "IfSteps"), "C": ("Gate", "ElseSteps")}


def test_given_step_names_with_markup_then_the_svg_escapes_them():
    svg = graph_layout.graph_svg(steps([("<b>x</b>", "Processing", [])]))
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
