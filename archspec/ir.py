"""The graph IR: a single-input, single-output DAG of op nodes.

Node kinds form a closed set, declared here once:

    input   the network input; `params` is None, `shape` is the per-sample input shape.
    op      an application of a registered op to the outputs of earlier nodes (`inputs`).

One node is the graph's `output`. Shapes are per sample: the batch axis is never part of a `Shape`.
Nodes are kept in declaration order, which lowering guarantees is a topological order; `lint()`
checks that and every other invariant, and says how to fix what it finds.

The IR knows nothing of specs or YAML (a node only remembers the `Location` it came from) and
nothing of torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
import keyword
import re
from typing import Literal

import networkx as nx
from pydantic import BaseModel

from archspec.errors import Location

Shape = tuple[int, ...]
NodeKind = Literal["input", "op"]

INPUT_OP = "input"
_NAME_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$|^[0-9]+$")


def valid_name(name: str) -> bool:
    """Dotted names whose parts are identifiers (no keywords, no leading '_') or repeat indices."""
    parts = name.split(".")
    return all(_NAME_PART.match(p) and not keyword.iskeyword(p) for p in parts) and not parts[0].isdigit()


InitArg = int | float | str | bool | None


@dataclass(frozen=True)
class Init:
    """How a backend fills one tensor when it builds the layer: a distribution of the closed set in
    `archspec.init.DISTRIBUTIONS` and its evaluated arguments (data, not code), with the spec rule it
    came from."""

    kind: str
    args: tuple[tuple[str, InitArg], ...] = ()
    rule: Location | None = None

    def __str__(self) -> str:
        return self.kind + (f"({', '.join(f'{k}={v!r}' for k, v in self.args)})" if self.args else "")


@dataclass(frozen=True)
class Naming:
    """How the graph's tensor names map to a reference checkpoint's (the spec's `weights:` section):
    rename rules (ours pattern, ref template, where written), and whether tensors no name pairs may be
    paired by position."""

    rename: tuple[tuple[str, str, Location | None], ...] = ()
    by_position: bool = True


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    params: BaseModel | None
    inputs: tuple[str, ...] = ()
    shape: Shape | None = None
    source: Location | None = None
    init: tuple[tuple[str, Init], ...] = ()  # tensor (relative to the layer) -> how to fill it; absent: the backend's default

    @property
    def kind(self) -> NodeKind:
        return "input" if self.op == INPUT_OP else "op"


class GraphError(Exception):
    """An IR invariant does not hold: a bug in lowering or in a pass, not in the user's spec."""


@dataclass
class Graph:
    name: str
    _nodes: dict[str, Node] = field(default_factory=dict)
    _dag: nx.DiGraph = field(default_factory=nx.DiGraph)
    output: str | None = None
    _order: dict[str, int] = field(default_factory=dict)  # declaration position, for sorting users
    naming: Naming = Naming()

    # -- building -------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self._nodes:
            raise GraphError(f"node {node.name!r} is added twice; names in a graph are unique")
        self._nodes[node.name] = node
        self._order[node.name] = len(self._order)
        self._dag.add_node(node.name)
        for src in node.inputs:
            self._dag.add_edge(src, node.name)
        return node

    def replace(self, name: str, **changes: object) -> Node:
        """Swap in a copy of node `name` with `changes`; edges follow a change of inputs."""
        old = self._nodes[name]
        new = replace(old, **changes)  # type: ignore[arg-type]
        self._nodes[name] = new
        if new.inputs != old.inputs:
            for src in old.inputs:
                if self._dag.has_edge(src, name):
                    self._dag.remove_edge(src, name)
            for src in new.inputs:
                self._dag.add_edge(src, name)
        return new

    def remove(self, name: str) -> None:
        """Remove a node with no users (rewire them first with `rewire`)."""
        if self.users(name):
            raise GraphError(f"cannot remove {name!r}: still used by {self.users(name)}")
        del self._nodes[name]
        del self._order[name]
        self._dag.remove_node(name)

    def rewire(self, old: str, new: str) -> None:
        """Make every user of `old` (and the output) read `new` instead."""
        for user in self.users(old):
            node = self._nodes[user]
            self.replace(user, inputs=tuple(new if i == old else i for i in node.inputs))
        if self.output == old:
            self.output = new

    # -- reading --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def node(self, name: str) -> Node:
        return self._nodes[name]

    @property
    def input(self) -> Node:
        for node in self._nodes.values():
            if node.kind == "input":
                return node
        raise GraphError("graph has no input node")

    @property
    def ops(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.kind == "op"]

    def users(self, name: str) -> list[str]:
        return sorted(self._dag.successors(name), key=self._order.__getitem__)

    def input_shapes(self, node: Node) -> list[Shape]:
        shapes = []
        for src in node.inputs:
            shape = self._nodes[src].shape
            if shape is None:
                raise GraphError(f"{node.name!r} reads {src!r} before its shape is known")
            shapes.append(shape)
        return shapes

    @property
    def output_shape(self) -> Shape:
        if self.output is None or self._nodes[self.output].shape is None:
            raise GraphError("graph output or its shape is not set; run shape inference")
        return self._nodes[self.output].shape  # type: ignore[return-value]

    # -- checking -------------------------------------------------------------------------
    def lint(self, *, shapes: bool = True) -> None:
        """Check every invariant; raise GraphError listing all problems and how to fix each."""
        problems: list[str] = []
        seen: set[str] = set()
        inputs = [n.name for n in self._nodes.values() if n.kind == "input"]
        if len(inputs) != 1:
            problems.append(f"expected exactly one input node, found {inputs}")
        for node in self._nodes.values():
            if not valid_name(node.name) and node.kind == "op":
                problems.append(f"{node.name!r} is not a valid dotted name of identifiers")
            if node.kind == "input" and node.inputs:
                problems.append(f"input node {node.name!r} must not have inputs")
            if node.kind == "op" and not node.inputs:
                problems.append(f"op node {node.name!r} has no inputs; connect it with from:")
            for src in node.inputs:
                if src not in self._nodes:
                    problems.append(f"{node.name!r} reads unknown node {src!r}")
                elif src not in seen:
                    problems.append(f"{node.name!r} reads {src!r}, declared after it: keep declaration order topological")
            if shapes and node.shape is None:
                problems.append(f"{node.name!r} has no shape: run InferShapes after changing the graph")
            if node.shape is not None and any((not isinstance(d, int)) or d < 1 for d in node.shape):
                problems.append(f"{node.name!r} has a non-positive or non-integer dimension {node.shape}")
            seen.add(node.name)
        if self.output is None or self.output not in self._nodes:
            problems.append(f"output {self.output!r} is not a node of the graph")
        if not nx.is_directed_acyclic_graph(self._dag):
            problems.append("the graph has a cycle")
        if set(self._dag.nodes) != set(self._nodes):
            problems.append("the networkx view and the node table disagree: edit the graph only through Graph methods")
        if problems:
            raise GraphError(f"IR graph {self.name!r} is malformed:\n  " + "\n  ".join(problems))

    def copy(self) -> Graph:
        return Graph(self.name, dict(self._nodes), self._dag.copy(), self.output, dict(self._order), self.naming)

    def reaches(self) -> dict[str, int]:
        """Per node, a bit set (an int, bit k for the k-th node in declaration order) of the nodes it
        depends on, itself included: u depends on v when bit(v) is in reaches[u]."""
        bits: dict[str, int] = {}
        for k, node in enumerate(self._nodes.values()):
            value = 1 << k
            for src in node.inputs:
                value |= bits.get(src, 0)
            bits[node.name] = value
        return bits


def numel(shape: Iterable[int]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total
