"""A pipeline definition's DAG laid out for drawing as inline SVG: boxes in columns by the
longest path from a first step (left to right), edges from each step's dependencies, a
Condition's edges into its branches labelled "if" / "else", and each step's key facts.

Pure: a parsed `Definition` in, coordinates and text out; the template draws them, so every
string stays user data that autoescaping guards. No JavaScript lays anything out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.definition import Definition, Step, StepType

NODE_WIDTH = 184
NODE_HEIGHT = 58
COLUMN_GAP = 76  # room for an edge and its "if"/"else" label between two columns
ROW_GAP = 22
LANE_GAP = 10  # between the lanes of edges that skip columns, under the boxes
MARGIN = 12
NAME_CHARS = 22  # what fits in a box at 13 px; the full name is in the box's title

# A short label per step type, shown in its box as its "icon" (text, so never colour only).
TYPE_LABELS: dict[str, str] = {
    StepType.PROCESSING: "Processing",
    StepType.TRAINING: "Training",
    StepType.TRANSFORM: "Transform",
    StepType.CONDITION: "Condition",
    StepType.REGISTER_MODEL: "Register model",
    StepType.MODEL: "Create model",
    StepType.FAIL: "Fail",
}
TYPE_GLYPHS: dict[str, str] = {
    StepType.PROCESSING: "P",
    StepType.TRAINING: "T",
    StepType.TRANSFORM: "B",  # batch transform
    StepType.CONDITION: "?",
    StepType.REGISTER_MODEL: "R",
    StepType.MODEL: "M",
    StepType.FAIL: "!",
}


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class Node:
    name: str
    short_name: str  # the name cut to fit its box
    type: str
    type_label: str
    glyph: str
    css: str  # the type as a class name: processing, training, ...
    x: int
    y: int
    column: int
    facts: tuple[Fact, ...]
    index: int  # its position, for element ids that do not depend on user text


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path
    label: str  # "if", "else" or ""
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Dag:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def columns(steps: Sequence[Step]) -> dict[str, int]:
    """Each step's column: 0 for a step with no dependencies, else one more than the
    furthest of its dependencies (the longest path). `steps` is in DAG order, as parsed."""
    column: dict[str, int] = {}
    for step in steps:
        column[step.name] = 1 + max((column[d] for d in step.dependencies), default=-1)
    return column


def _rows(steps: Sequence[Step], column: Mapping[str, int]) -> dict[str, int]:
    """Each step's row within its column. Steps are placed in order of their dependencies'
    mean row (one barycentre pass, left to right), which keeps most edges straight; ties
    keep the definition's order."""
    row: dict[str, int] = {}
    by_column: dict[int, list[Step]] = {}
    for step in steps:
        by_column.setdefault(column[step.name], []).append(step)
    for index in sorted(by_column):
        members = by_column[index]
        order = {step.name: position for position, step in enumerate(members)}

        def weight(step: Step, order: Mapping[str, int] = order) -> tuple[float, int]:
            placed = [row[d] for d in step.dependencies if d in row]
            mean = sum(placed) / len(placed) if placed else float(order[step.name])
            return mean, order[step.name]

        for position, step in enumerate(sorted(members, key=weight)):
            row[step.name] = position
    return row


def dag_layout(definition: Definition) -> Dag:
    steps = definition.steps
    column = columns(steps)
    row = _rows(steps, column)
    nodes: dict[str, Node] = {}
    for index, step in enumerate(steps):
        x = MARGIN + column[step.name] * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row[step.name] * (NODE_HEIGHT + ROW_GAP)
        nodes[step.name] = Node(
            name=step.name,
            short_name=_shorten(step.display_name or step.name, NAME_CHARS),
            type=step.type,
            type_label=TYPE_LABELS.get(step.type, step.type)
            + (" (function)" if step.is_function else ""),
            glyph=TYPE_GLYPHS.get(step.type, "·"),
            css=step.type.lower(),
            x=x,
            y=y,
            column=column[step.name],
            facts=step_facts(step),
            index=index,
        )
    bottom = max((n.y + NODE_HEIGHT for n in nodes.values()), default=0)
    edges: list[Edge] = []
    lanes = 0
    for step in steps:
        for source in sorted(step.dependencies):
            start, end = nodes[source], nodes[step.name]
            between = [n for n in nodes.values() if start.column < n.column < end.column]
            if not between:
                edges.append(_edge(start, end, _branch_label(step, source)))
                continue
            # An edge that skips columns goes round under their boxes, each in its own lane,
            # instead of hiding behind them.
            lanes += 1
            lane = max(n.y + NODE_HEIGHT for n in between) + lanes * LANE_GAP
            bottom = max(bottom, lane)
            edges.append(_edge(start, end, _branch_label(step, source), lane=lane))
    width = max((n.x + NODE_WIDTH for n in nodes.values()), default=0) + MARGIN
    return Dag(tuple(nodes.values()), tuple(edges), width, bottom + MARGIN)


def _branch_label(step: Step, source: str) -> str:
    if step.condition != source:
        return ""
    return "if" if step.branch == "IfSteps" else "else"


def _edge(source: Node, target: Node, label: str, *, lane: int | None = None) -> Edge:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    if lane is None:
        bend = max(24, (x2 - x1) // 2)
        path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
    else:  # down into the lane in the first gap, along it, up in the last gap
        half = COLUMN_GAP // 2
        path = (
            f"M{x1},{y1} C{x1 + half},{y1} {x1},{lane} {x1 + half},{lane} "
            f"L{x2 - half},{lane} C{x2},{lane} {x2 - half},{y2} {x2},{y2}"
        )
    # The label sits on the edge's last straight stretch, just before the target's box.
    return Edge(source.name, target.name, path, label, x2 - 30, y2 - 6)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- a step's key facts -----------------------------------------------------------------


def expression_text(value: Any) -> str:
    """A value as a person reads it: an expression `{"Get": "Parameters.X"}` as
    `Parameters.X`, a join as `join("/", a, b)`, other JSON compact."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"}:
            return str(value["Get"])
        if set(value) == {"Std:Join"} and isinstance(value["Std:Join"], Mapping):
            body = value["Std:Join"]
            parts = [json.dumps(body.get("On", ""))] + [
                expression_text(v) for v in body.get("Values") or []
            ]
            return f"join({', '.join(parts)})"
        if set(value) == {"Std:JsonGet"} and isinstance(value["Std:JsonGet"], Mapping):
            body = value["Std:JsonGet"]
            source = body.get("PropertyFile", body.get("S3Uri", ""))
            return f"{expression_text(source)} → {body.get('Path', '')}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _dig(document: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(document, list) or len(document) <= key:
                return None
            document = document[key]
        elif isinstance(document, Mapping):
            document = document.get(key)
        else:
            return None
    return document


def _names(items: Any, key: str) -> str:
    if not isinstance(items, list):
        return ""
    return ", ".join(expression_text(i.get(key)) for i in items if isinstance(i, Mapping))


def step_facts(step: Step) -> tuple[Fact, ...]:
    """What a person wants to know of a step at a glance: its image, instance type, inputs
    and outputs (what its type has of these), then its dependencies, cache and retries."""
    args = step.arguments
    found: list[tuple[str, Any]] = [("Type", TYPE_LABELS.get(step.type, step.type))]
    if step.type == StepType.PROCESSING:
        found += [
            ("Image", _dig(args, "AppSpecification", "ImageUri")),
            ("Instance type", _dig(args, "ProcessingResources", "ClusterConfig", "InstanceType")),
            ("Inputs", _names(args.get("ProcessingInputs"), "InputName")),
            ("Outputs", _names(_dig(args, "ProcessingOutputConfig", "Outputs"), "OutputName")),
        ]
    elif step.type == StepType.TRAINING:
        found += [
            ("Image", _dig(args, "AlgorithmSpecification", "TrainingImage")),
            ("Instance type", _dig(args, "ResourceConfig", "InstanceType")),
            ("Inputs", _names(args.get("InputDataConfig"), "ChannelName")),
            ("Outputs", _dig(args, "OutputDataConfig", "S3OutputPath")),
        ]
    elif step.type == StepType.TRANSFORM:
        found += [
            ("Model", args.get("ModelName")),
            ("Instance type", _dig(args, "TransformResources", "InstanceType")),
            ("Inputs", _dig(args, "TransformInput", "DataSource", "S3DataSource", "S3Uri")),
            ("Outputs", _dig(args, "TransformOutput", "S3OutputPath")),
        ]
    elif step.type == StepType.REGISTER_MODEL:
        found += [
            ("Image", _dig(args, "InferenceSpecification", "Containers", 0, "Image")),
            ("Model data", _dig(args, "InferenceSpecification", "Containers", 0, "ModelDataUrl")),
            ("Model group", args.get("ModelPackageGroupName")),
            ("Approval", args.get("ModelApprovalStatus")),
        ]
    elif step.type == StepType.MODEL:
        found += [
            ("Image", _dig(args, "PrimaryContainer", "Image")),
            ("Model data", _dig(args, "PrimaryContainer", "ModelDataUrl")),
        ]
    elif step.type == StepType.CONDITION:
        found += [
            ("Conditions", "; ".join(_condition_text(c) for c in args.get("Conditions") or [])),
            ("If", ", ".join(step.if_steps) or "—"),
            ("Else", ", ".join(step.else_steps) or "—"),
        ]
    elif step.type == StepType.FAIL:
        found += [("Error message", args.get("ErrorMessage"))]
    found += [
        ("Property files", ", ".join(f.name for f in step.property_files)),
        ("Depends on", ", ".join(sorted(step.dependencies))),
        ("Cache", _cache_text(step)),
        (
            "Retries",
            f"{len(step.retry_policies)} polic{'y' if len(step.retry_policies) == 1 else 'ies'}"
            if step.retry_policies
            else "",
        ),
    ]
    return tuple(
        Fact(label, value if isinstance(value, str) else expression_text(value))
        for label, value in found
        if value not in (None, "", [], {})
    )


def _cache_text(step: Step) -> str:
    if step.cache is None or not step.cache.enabled:
        return ""
    return (
        f"on, expires after {step.cache.expire_after_text}"
        if step.cache.expire_after_text
        else "on"
    )


_COMPARISON_SIGNS = {
    "Equals": "==",
    "GreaterThan": ">",
    "GreaterThanOrEqualTo": "≥",
    "LessThan": "<",
    "LessThanOrEqualTo": "≤",
}


def _condition_text(condition: Any) -> str:
    if not isinstance(condition, Mapping):
        return expression_text(condition)
    kind = condition.get("Type", "")
    if kind in _COMPARISON_SIGNS:
        left = expression_text(condition.get("LeftValue"))
        right = expression_text(condition.get("RightValue"))
        return f"{left} {_COMPARISON_SIGNS[kind]} {right}"
    if kind == "In":
        values = ", ".join(expression_text(v) for v in condition.get("Values") or [])
        return f"{expression_text(condition.get('QueryValue'))} in [{values}]"
    if kind == "Not":
        return f"not ({_condition_text(condition.get('Condition'))})"
    if kind == "Or":
        return " or ".join(f"({_condition_text(c)})" for c in condition.get("Conditions") or [])
    return expression_text(condition)
