"""Structural diff of two compiled specs: layers added, removed and changed; params and MACs per stage.

Layers are aligned scope by scope: the nodes directly under one path (`layer1.0.`) in A and B are
matched as sequences (difflib), by their own name, or by their op where the name is one lowering made
up (`relu_1`), so inserting an unnamed layer does not make every later unnamed layer of the scope look
renamed. A matched pair is "changed" when its op, arguments (defaults filled in), input or output shapes
differ: a linear layer whose input grew is a changed layer (more parameters), though written the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import difflib
from typing import Any

from archspec.ir import Graph, Node
from archspec.lower import fmt_shape
from archspec.passes.counts import Costs, LayerCost
from archspec.views.structure import is_auto_name, segments, stage_of


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    output: tuple[int, ...]
    params: int
    macs: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "output": list(self.output), "params": self.params, "macs": self.macs}


@dataclass(frozen=True)
class Change:
    a: Layer
    b: Layer
    arguments: dict[str, tuple[Any, Any]]  # argument -> (value in A, value in B), only those that differ
    inputs: tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]  # input shapes in A, in B

    @property
    def what(self) -> list[str]:
        parts = []
        if self.a.op != self.b.op:
            parts.append(f"op {self.a.op} -> {self.b.op}")
        parts += [f"{k} {_show(va)} -> {_show(vb)}" for k, (va, vb) in self.arguments.items()]
        if self.inputs[0] != self.inputs[1]:
            parts.append(f"input {_shapes(self.inputs[0])} -> {_shapes(self.inputs[1])}")
        if self.a.output != self.b.output:
            parts.append(f"output {fmt_shape(self.a.output)} -> {fmt_shape(self.b.output)}")
        return parts

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "arguments": {k: [va, vb] for k, (va, vb) in self.arguments.items()},
            "inputs": [[list(s) for s in side] for side in self.inputs],
        }


@dataclass(frozen=True)
class StageDelta:
    stage: str
    params: tuple[int, int]
    macs: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "params": list(self.params),
            "macs": list(self.macs),
            "params_delta": self.params[1] - self.params[0],
            "macs_delta": self.macs[1] - self.macs[0],
        }


@dataclass(frozen=True)
class Diff:
    a: str
    b: str
    added: tuple[Layer, ...]
    removed: tuple[Layer, ...]
    changed: tuple[Change, ...]
    stages: tuple[StageDelta, ...]
    params: tuple[int, int]
    macs: tuple[int, int]
    input: tuple[tuple[int, ...], tuple[int, ...]]
    output: tuple[tuple[int, ...], tuple[int, ...]]

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed) and self.input[0] == self.input[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "input": [list(s) for s in self.input],
            "output": [list(s) for s in self.output],
            "added": [l.to_json() for l in self.added],
            "removed": [l.to_json() for l in self.removed],
            "changed": [c.to_json() for c in self.changed],
            "stages": [s.to_json() for s in self.stages],
            "total": {
                "params": list(self.params),
                "macs": list(self.macs),
                "params_delta": self.params[1] - self.params[0],
                "macs_delta": self.macs[1] - self.macs[0],
            },
        }


def _shapes(shapes: tuple[tuple[int, ...], ...]) -> str:
    return ", ".join(fmt_shape(s) for s in shapes)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _scopes(graph: Graph) -> dict[str, list[Node]]:
    scopes: dict[str, list[Node]] = {}
    for node in graph.ops:
        scopes.setdefault(".".join(segments(node.name)[:-1]), []).append(node)
    return scopes


def _key(node: Node) -> str:
    local = segments(node.name)[-1]
    return f"<{node.op}>" if is_auto_name(local, node.op) else local


def _arguments(node: Node) -> dict[str, Any]:
    return node.params.model_dump(mode="json") if node.params is not None else {}


def align(a: Graph, b: Graph) -> tuple[list[tuple[Node, Node]], list[Node], list[Node]]:
    """Matched pairs, nodes only in A, nodes only in B (each in graph order)."""
    scopes_a, scopes_b = _scopes(a), _scopes(b)
    pairs: list[tuple[Node, Node]] = []
    removed: list[Node] = []
    added: list[Node] = []
    for scope in dict.fromkeys([*scopes_a, *scopes_b]):
        xs, ys = scopes_a.get(scope, []), scopes_b.get(scope, [])
        matcher = difflib.SequenceMatcher(None, [_key(n) for n in xs], [_key(n) for n in ys], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                pairs.extend(zip(xs[i1:i2], ys[j1:j2]))
            else:
                removed.extend(xs[i1:i2])
                added.extend(ys[j1:j2])
    order_a = {n.name: k for k, n in enumerate(a)}
    order_b = {n.name: k for k, n in enumerate(b)}
    pairs.sort(key=lambda p: order_b[p[1].name])
    removed.sort(key=lambda n: order_a[n.name])
    added.sort(key=lambda n: order_b[n.name])
    return pairs, removed, added


def _per_stage(costs: Costs) -> dict[str, tuple[int, int]]:
    stages: dict[str, tuple[int, int]] = {}
    for layer in costs.layers:
        params, macs = stages.get(stage_of(layer.name), (0, 0))
        stages[stage_of(layer.name)] = (params + layer.params, macs + layer.macs)
    return stages


def diff(a: Graph, costs_a: Costs, b: Graph, costs_b: Costs, names: tuple[str, str] | None = None) -> Diff:
    layers_a = {l.name: l for l in costs_a.layers}
    layers_b = {l.name: l for l in costs_b.layers}

    def layer(cost: LayerCost) -> Layer:
        return Layer(cost.name, cost.op, tuple(cost.output), cost.params, cost.macs)

    pairs, removed, added = align(a, b)
    changed = []
    for x, y in pairs:
        args_x, args_y = _arguments(x), _arguments(y)
        arguments = {
            k: (args_x.get(k), args_y.get(k))
            for k in dict.fromkeys([*args_x, *args_y])
            if args_x.get(k) != args_y.get(k)
        }
        inputs = (tuple(a.input_shapes(x)), tuple(b.input_shapes(y)))
        if x.op != y.op or arguments or x.shape != y.shape or inputs[0] != inputs[1]:
            changed.append(Change(layer(layers_a[x.name]), layer(layers_b[y.name]), arguments, inputs))
    stages_a, stages_b = _per_stage(costs_a), _per_stage(costs_b)
    stages = tuple(
        StageDelta(
            s,
            (stages_a.get(s, (0, 0))[0], stages_b.get(s, (0, 0))[0]),
            (stages_a.get(s, (0, 0))[1], stages_b.get(s, (0, 0))[1]),
        )
        for s in dict.fromkeys([*stages_a, *stages_b])
    )
    return Diff(
        names[0] if names else a.name,
        names[1] if names else b.name,
        tuple(layer(layers_b[n.name]) for n in added),
        tuple(layer(layers_a[n.name]) for n in removed),
        tuple(changed),
        stages,
        (costs_a.params, costs_b.params),
        (costs_a.macs, costs_b.macs),
        (tuple(costs_a.input), tuple(costs_b.input)),
        (tuple(costs_a.output), tuple(costs_b.output)),
    )


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _rows(rows: Iterable[tuple[str, ...]], right_from: int) -> list[str]:
    rows = list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i < right_from else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    ]


def text(d: Diff) -> str:
    """The diff as a plain-text report."""
    lines = [f"{d.a} -> {d.b}"]
    if d.input[0] != d.input[1]:
        lines.append(f"input {fmt_shape(d.input[0])} -> {fmt_shape(d.input[1])}")
    for title, mark, layers in (("added", "+", d.added), ("removed", "-", d.removed)):
        lines.append(f"{title} ({len(layers)}):")
        if layers:
            sign = 1 if mark == "+" else -1
            lines += [
                "  " + r
                for r in _rows(
                    (
                        (
                            f"{mark} {l.name}",
                            l.op,
                            fmt_shape(l.output),
                            f"params {_signed(sign * l.params)}",
                            f"MACs {_signed(sign * l.macs)}",
                        )
                        for l in layers
                    ),
                    3,
                )
            ]
    lines.append(f"changed ({len(d.changed)}):")
    lines += [
        f"  ~ {c.b.name if c.a.name == c.b.name else c.a.name + ' / ' + c.b.name}: {'; '.join(c.what)}"
        + (f"; params {_signed(c.b.params - c.a.params)}" if c.b.params != c.a.params else "")
        for c in d.changed
    ]
    lines.append("per stage:")
    header = ("stage", "params A", "params B", "delta", "MACs A", "MACs B", "delta")
    body = [
        (
            s.stage,
            f"{s.params[0]:,}",
            f"{s.params[1]:,}",
            _signed(s.params[1] - s.params[0]),
            f"{s.macs[0]:,}",
            f"{s.macs[1]:,}",
            _signed(s.macs[1] - s.macs[0]),
        )
        for s in d.stages
    ]
    total = (
        "total",
        f"{d.params[0]:,}",
        f"{d.params[1]:,}",
        _signed(d.params[1] - d.params[0]),
        f"{d.macs[0]:,}",
        f"{d.macs[1]:,}",
        _signed(d.macs[1] - d.macs[0]),
    )
    lines += ["  " + r for r in _rows([header, *body, total], 1)]
    if d.same:
        lines.append("the two specs build the same layers")
    return "\n".join(lines)
