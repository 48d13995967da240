"""Which layers a backend can compile: the data behind `archspec check` and every backend's refusal.

Each backend keeps a coverage table beside its lowering table: op name -> a `Support`, or a rule that
looks at the node and its input shapes (ONNX, for instance, has no adaptive pooling to an output size
that does not divide a dynamic input). Three levels, a closed set:

    native       the backend's toolchain has a direct counterpart for the op
    fallback     compiled, but decomposed into simpler ops or run outside the accelerated path
                 (the note says which); outputs are still those of the torch backend
    unsupported  the backend cannot compile this layer; `build` refuses the spec with a located
                 error naming the layer and the op

An op missing from the table is unsupported. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from archspec.errors import Location, SpecError, SpecErrors
from archspec.ir import Graph, Node, Shape

Level = Literal["native", "fallback", "unsupported"]
LEVELS: tuple[Level, ...] = ("native", "fallback", "unsupported")


@dataclass(frozen=True)
class Support:
    level: Level
    note: str = ""


NATIVE = Support("native")
Rule = Callable[[Node, Sequence[Shape]], Support]
CoverageTable = Mapping[str, Support | Rule]


@dataclass(frozen=True)
class LayerSupport:
    layer: str
    op: str
    level: Level
    note: str
    source: Location | None


def assess(graph: Graph, table: CoverageTable, backend: str) -> list[LayerSupport]:
    """One entry per op node of `graph`, in graph order."""
    report = []
    for node in graph.ops:
        entry = table.get(node.op)
        if entry is None:
            support = Support(
                "unsupported",
                f"the {backend} backend has no lowering for op {node.op!r}; install the plugin that provides one",
            )
        elif isinstance(entry, Support):
            support = entry
        else:
            support = entry(node, graph.input_shapes(node))
        report.append(LayerSupport(node.name, node.op, support.level, support.note, node.source))
    return report


def refuse_unsupported(report: Sequence[LayerSupport], backend: str) -> None:
    """Raise one located AS803 error per layer the backend cannot compile (all of them at once)."""
    errors = [
        SpecError(
            "AS803", f"layer {s.layer!r} (op {s.op}): the {backend} backend cannot compile it: {s.note}", s.source
        )
        for s in report
        if s.level == "unsupported"
    ]
    if errors:
        raise SpecErrors(errors)


def format_report(report: Sequence[LayerSupport], backend: str) -> str:
    """The per-layer table of `archspec check`, then a one-line verdict."""
    rows = [("layer", "op", "support", "note")] + [(s.layer, s.op, s.level, s.note) for s in report]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ----")
    counts = {level: sum(1 for s in report if s.level == level) for level in LEVELS}
    verdict = "can compile" if not counts["unsupported"] else "cannot compile"
    lines.append(
        f"{backend}: {verdict} this spec: {counts['native']} native, {counts['fallback']} fallback, "
        f"{counts['unsupported']} unsupported layer(s)"
    )
    return "\n".join(lines)


def from_supports(graph: Graph, supports: Callable[[str], bool], backend: str) -> list[LayerSupport]:
    """The report of a backend that declares only `supports(op)`: each op is native or unsupported."""
    return assess(graph, {node.op: NATIVE for node in graph.ops if supports(node.op)}, backend)


class TableBackend:
    """`supports`, `unsupported` and `coverage` of a backend from its coverage table; ops that other
    plugins lower for this backend (`extra_lowerings`) are compiled through that lowering, a fallback.
    The onnx, aoti and tensorrt backends share this instead of each writing it out."""

    name: str
    COVERAGE: CoverageTable = {}
    PLUGIN_NOTE = "a plugin op, compiled through its torch lowering"

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., object]] | None = None):
        self.extra = dict(extra_lowerings or {})
        plugin_ops: CoverageTable = {op: Support("fallback", self.PLUGIN_NOTE) for op in self.extra}
        self.table: CoverageTable = {**self.COVERAGE, **plugin_ops}

    def supports(self, op: str) -> bool:
        return op in self.table

    def unsupported(self, graph: Graph) -> list[str]:
        return sorted({s.op for s in self.coverage(graph) if s.level == "unsupported"})

    def coverage(self, graph: Graph) -> list[LayerSupport]:
        return assess(graph, self.table, self.name)
