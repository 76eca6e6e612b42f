"""The pipeline graph as an SVG: one layered layout for the HTML report and the local Studio.

Top to bottom, like SageMaker Studio's pipeline view, so a graph of any depth fits a page's
width (a layer holds at most a few steps). The layout is the classic layered one:

    layer  = longest path from a step without dependencies
    dummy  = an invisible slot in every layer a long edge crosses, so the edge is routed
             beside the boxes of those layers instead of under them
    order  = within a layer, steps sorted by the mean position of what they depend on
             (a few sweeps of the barycenter heuristic), definition order breaking ties

      [PrepareBatchInput]   [ResolveModel]
             |  (dummy)           |
             |              [CreateModel]
              \\                  /
               [BatchForecast]

Edges leave a box at its bottom centre and end, arrow tip on the border, at the top of the
box they feed. Edges out of a Condition step carry "if true" / "else"; once the condition
has run, the branch taken is drawn solid and the other one faint and dashed.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Optional

STATUS_COLOURS = {
    "Succeeded": "#2e7d32",
    "Failed": "#c62828",
    "Stopped": "#ef6c00",
    "Executing": "#1565c0",
    "NotExecuted": "#9e9e9e",
    "Pending": "#bdbdbd",
}
BOX_H = 48
GAP_X = 36
GAP_Y = 46
MARGIN = 14
DUMMY_W = 18
NAME_CHAR_PX = 7.6  # 13px bold sans-serif, generous
DETAIL_CHAR_PX = 6.3  # 11px sans-serif
SWEEPS = 4


def format_duration(seconds: Optional[float]) -> str:
    """1.2s, 4m05s: how long steps took, for people."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def branches(definition: Any) -> dict:
    """{step name: (condition step, "IfSteps" | "ElseSteps")} for every step inside a branch."""
    found: dict = {}

    def walk(steps: Iterable) -> None:
        for body in steps or []:
            if not isinstance(body, Mapping) or body.get("Type") != "Condition":
                continue
            arguments = body.get("Arguments") or {}
            for key in ("IfSteps", "ElseSteps"):
                for child in arguments.get(key) or []:
                    if isinstance(child, Mapping) and child.get("Name"):
                        found[child["Name"]] = (body.get("Name"), key)
                walk(arguments.get(key) or [])

    if isinstance(definition, Mapping):
        walk(definition.get("Steps") or [])
    return found


def _layers(steps: list) -> dict:
    names = {s["name"] for s in steps}
    depth: dict = {}

    def level(name: str, seen: tuple = ()) -> int:
        if name not in depth:
            step = next(s for s in steps if s["name"] == name)
            parents = [d for d in step.get("depends_on") or [] if d in names and d not in seen]
            depth[name] = 1 + max([level(p, seen + (name,)) for p in parents] + [-1])
        return depth[name]

    for step in steps:
        level(step["name"])
    return depth


def drawn_dependencies(steps: list) -> dict:
    """{step: the dependencies drawn}: the transitive reduction, so that PrepareData -> Evaluate is
    not drawn beside PrepareData -> AutoML -> BacktestForecast -> Evaluate (the order is the same)."""
    names = {s["name"] for s in steps}
    parents = {
        s["name"]: [d for d in dict.fromkeys(s.get("depends_on") or []) if d in names and d != s["name"]] for s in steps
    }
    ancestors: dict = {}

    def above(name: str, seen: frozenset = frozenset()) -> set:
        if name not in ancestors:
            found: set = set()
            for parent in parents[name]:
                if parent not in seen:
                    found |= {parent} | above(parent, seen | {name})
            ancestors[name] = found
        return ancestors[name]

    return {name: [p for p in ps if not any(p in above(q) for q in ps if q != p)] for name, ps in parents.items()}


def layout(steps: list) -> dict:
    """Positions: {"nodes": {name: (x, y, w, h)}, "edges": [(source, target, [(x, y), ...])], size}."""
    reduced = drawn_dependencies(steps)
    steps = [dict(s, depends_on=reduced[s["name"]]) for s in steps]
    depth = _layers(steps)
    order_index = {s["name"]: i for i, s in enumerate(steps)}
    by_name = {s["name"]: s for s in steps}
    layer_count = max(depth.values(), default=-1) + 1
    rows: list = [[] for _ in range(layer_count)]
    for step in steps:
        rows[depth[step["name"]]].append(step["name"])
    # long edges become chains through dummy slots, one per crossed layer
    chains = []
    for step in steps:
        for parent in step.get("depends_on") or []:
            if parent not in by_name:
                continue
            chain = [parent]
            for level in range(depth[parent] + 1, depth[step["name"]]):
                dummy = f"\0{parent}\0{step['name']}\0{level}"
                rows[level].append(dummy)
                order_index[dummy] = order_index[parent] + 0.5
                chain.append(dummy)
            chain.append(step["name"])
            chains.append(chain)
    parents_of: dict = {}
    children_of: dict = {}
    for chain in chains:
        for upper, lower in zip(chain, chain[1:]):
            parents_of.setdefault(lower, []).append(upper)
            children_of.setdefault(upper, []).append(lower)
    position = {name: float(i) for row in rows for i, name in enumerate(row)}

    def sort_row(row: list, neighbours: dict) -> list:
        def key(name: str) -> tuple:
            linked = [position[n] for n in neighbours.get(name, []) if n in position]
            centre = sum(linked) / len(linked) if linked else position[name]
            return (centre, order_index[name])

        ordered = sorted(row, key=key)
        for i, name in enumerate(ordered):
            position[name] = float(i)
        return ordered

    for _ in range(SWEEPS):
        for level in range(1, layer_count):
            rows[level] = sort_row(rows[level], parents_of)
        for level in range(layer_count - 2, -1, -1):
            rows[level] = sort_row(rows[level], children_of)

    def width_of(name: str) -> float:
        if name.startswith("\0"):
            return DUMMY_W
        step = by_name[name]
        detail = f"{step.get('type', '')} · {step.get('status', '')} · 00m00s"
        return max(150.0, len(name) * NAME_CHAR_PX + 24, len(detail) * DETAIL_CHAR_PX + 24)

    widths = {name: width_of(name) for row in rows for name in row}
    row_widths = [sum(widths[n] for n in row) + GAP_X * max(0, len(row) - 1) for row in rows]
    total_w = max(row_widths, default=200) + 2 * MARGIN
    nodes: dict = {}
    for level, row in enumerate(rows):
        x = MARGIN + (total_w - 2 * MARGIN - row_widths[level]) / 2
        y = MARGIN + level * (BOX_H + GAP_Y)
        for name in row:
            nodes[name] = (round(x, 1), y, round(widths[name], 1), BOX_H)
            x += widths[name] + GAP_X
    edges = []
    for chain in chains:
        points = []
        for i, name in enumerate(chain):
            x, y, w, h = nodes[name]
            cx = x + w / 2
            if i == 0:
                points.append((cx, y + h))
            elif i == len(chain) - 1:
                points.append((cx, y))
            else:  # a dummy: pass straight through its slot
                points.extend([(cx, y), (cx, y + h)])
        edges.append((chain[0], chain[-1], points))
    _spread_ports(edges, nodes)
    total_h = MARGIN * 2 + layer_count * BOX_H + max(0, layer_count - 1) * GAP_Y
    return {
        "nodes": {k: v for k, v in nodes.items() if not k.startswith("\0")},
        "edges": edges,
        "width": round(total_w),
        "height": total_h,
    }


def _spread_ports(edges: list, nodes: dict) -> None:
    """Several edges into (or out of) one box meet its border side by side, in the order of the
    boxes at their other end, instead of all at the centre: each arrow visibly lands on its box."""
    for end, neighbour in ((-1, -2), (0, 1)):  # arrival ports on top, then departure ports below
        ends: dict = {}
        for index, (source, target, _points) in enumerate(edges):
            ends.setdefault(target if end == -1 else source, []).append(index)
        for name, indices in ends.items():
            if len(indices) < 2:
                continue
            x, _, w, _ = nodes[name]
            ordered = sorted(indices, key=lambda i: edges[i][2][neighbour][0])  # by where the edge comes from
            for slot, i in enumerate(ordered, start=1):
                points = edges[i][2]
                points[end] = (x + w * slot / (len(ordered) + 1), points[end][1])


def _path(points: list) -> str:
    """A smooth path through the points: vertical tangents at every bend, so it meets boxes square."""
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    px, py = x0, y0
    for x, y in rest:
        if abs(x - px) < 0.5:
            parts.append(f"L{x:.1f},{y:.1f}")
        else:
            mid = (py + y) / 2
            parts.append(f"C{px:.1f},{mid:.1f} {x:.1f},{mid:.1f} {x:.1f},{y:.1f}")
        px, py = x, y
    return " ".join(parts)


def graph_svg(steps: list, branch_of: Optional[Mapping[str, tuple]] = None, link: Optional[str] = None) -> str:
    """The drawing: boxes coloured by status, edges, the condition's branches labelled.

    `steps` are execution-record steps (name, type, status, depends_on, duration_seconds,
    outputs); `branch_of` comes from `branches(definition)`; `link` (a format string with
    {name}) makes each box a link, for the Studio.
    """
    branch_of = dict(branch_of or {})
    for step in steps:  # older records: the runtime's note names the branch that was not taken
        note = str(step.get("note") or "")
        if step["name"] not in branch_of and note.startswith("branch not taken ("):
            key, _, condition = note[len("branch not taken (") :].rstrip(")").partition(" of ")
            branch_of[step["name"]] = (condition, key)
    placed = layout(steps)
    by_name = {s["name"]: s for s in steps}
    width, height = placed["width"], placed["height"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" style="max-width:100%;height:auto" '
        f'font-family="system-ui,sans-serif" font-size="12" role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" markerWidth="9" markerHeight="9" refX="10" refY="5" '
        'orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        '</marker><marker id="arrow-faint" viewBox="0 0 10 10" markerWidth="9" markerHeight="9" refX="10" '
        'refY="5" orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#c4c4c4"/></marker></defs>',
    ]
    for source, target, points in placed["edges"]:
        parent = by_name[source]
        style, marker, label = 'stroke="#555" stroke-width="1.6"', "arrow", ""
        branch = branch_of.get(target)
        if parent.get("type") == "Condition" and branch and branch[0] == source:
            label = "if true" if branch[1] == "IfSteps" else "else"
            outcome = (parent.get("outputs") or {}).get("Outcome")
            if parent.get("status") == "Succeeded" and isinstance(outcome, bool):
                taken = outcome == (branch[1] == "IfSteps")
                style = (
                    'stroke="#2e7d32" stroke-width="2.6"'
                    if taken
                    else 'stroke="#c4c4c4" stroke-width="1.4" stroke-dasharray="5,4"'
                )
                marker = "arrow" if taken else "arrow-faint"
                label += " (taken)" if taken else " (not taken)"
            else:
                style = 'stroke="#555" stroke-width="1.6" stroke-dasharray="5,4"'
        parts.append(
            f'<path class="edge" data-from="{html.escape(source)}" data-to="{html.escape(target)}" '
            f'd="{_path(points)}" fill="none" {style} marker-end="url(#{marker})"/>'
        )
        if label:  # beside the edge's midpoint, on the side it bends away from
            (x1, y1), (x2, y2) = points[0], points[-1]
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
            anchor, dx = ("end", -8) if x2 < x1 else ("start", 8)
            parts.append(
                f'<text class="edge-label" x="{lx + dx:.1f}" y="{ly + 4:.1f}" text-anchor="{anchor}" '
                f'fill="#444" font-size="11" paint-order="stroke" stroke="white" stroke-width="3">'
                f"{html.escape(label)}</text>"
            )
    for name, (x, y, w, h) in placed["nodes"].items():
        step = by_name[name]
        status = str(step.get("status") or "Pending")
        colour = STATUS_COLOURS.get(status, "#757575")
        title = html.escape(
            f"{name} ({step.get('type')}): {status}"
            + (f" - {step['failure_reason']}" if step.get("failure_reason") else "")
            + (f" - {step['note']}" if step.get("note") else "")
        )
        fill = "#e3f2fd" if status == "Executing" else "#f5f5f5" if status in ("NotExecuted", "Pending") else "white"
        box = (
            f'<g class="step" data-step="{html.escape(name)}" data-status="{html.escape(status)}">'
            f'<title>{title}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="7" fill="{fill}" '
            f'stroke="{colour}" stroke-width="2.5"/>'
            f'<text x="{x + 12}" y="{y + 20}" font-weight="bold" font-size="13" fill="#222">'
            f"{html.escape(name)}</text>"
            f'<text x="{x + 12}" y="{y + 37}" font-size="11" fill="{colour}">'
            f"{html.escape(str(step.get('type', '')))} · {html.escape(status)} · "
            f"{format_duration(step.get('duration_seconds'))}</text></g>"
        )
        if link:
            box = f'<a href="{html.escape(link.format(name=name))}">{box}</a>'
        parts.append(box)
    parts.append("</svg>")
    return "".join(parts)
