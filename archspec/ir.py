"""The graph IR: a single-input DAG of op nodes with one or more outputs.

Node kinds form a closed set, declared here once:

    input   the network input; `params` is None, `shape` is the per-sample input shape.
    op      an application of a registered op to the outputs of earlier nodes (`inputs`).

The graph's `outputs` name the nodes whose values the network returns (one, usually; a detection neck
returns three maps); `output` is the first, the one a classifier's training and evaluation read. Shapes are per sample: the batch axis is never part of a `Shape`.
Nodes are kept in declaration order, which lowering guarantees is a topological order; `lint()`
checks that and every other invariant, and says how to fix what it finds.

The IR knows nothing of specs or YAML (a node only remembers the `Location` it came from) and
nothing of torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
import keyword
import re
from typing import Literal

import networkx as nx
from pydantic import BaseModel

from archspec.errors import Location

Shape = tuple[int, ...]
NodeKind = Literal["input", "op"]
Dtype = Literal["float32", "int64"]  # a value's element type: floats, or integer token ids (an int64 input)

INPUT_OP = "input"
_NAME_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$|^[0-9]+$")


def valid_name(name: str) -> bool:
    """Dotted names whose parts are identifiers (no keywords, no leading '_') or repeat indices."""
    parts = name.split(".")
    return all(_NAME_PART.match(p) and not keyword.iskeyword(p) for p in parts) and not parts[0].isdigit()


InitArg = int | float | str | bool | None
VALUES = "values"  # the Init kind that lists a tensor's values instead of naming a distribution


@dataclass(frozen=True)
class Init:
    """How a backend fills one tensor when it builds the layer: a distribution of the closed set in
    `archspec.init.DISTRIBUTIONS` and its evaluated arguments (data, not code), with the spec rule it
    came from."""

    kind: str
    args: tuple[tuple[str, InitArg], ...] = ()
    rule: Location | None = None
    values: tuple[float, ...] = ()  # kind "values": every element, flat in the tensor's order (a layer's init: values:)

    def __str__(self) -> str:
        if self.kind == VALUES:
            return f"values({len(self.values)})"
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
    init: tuple[
        tuple[str, Init], ...
    ] = ()  # tensor (relative to the layer) -> how to fill it; absent: the backend's default
    trainable: bool = True  # False: the layer's tensors keep their names but take no gradient (requires_grad False)
    dtype: Dtype = "float32"  # the element type of the node's value: int64 for token ids and what only moves them
    ties: tuple[tuple[str, str], ...] = ()  # own tensor leaf -> the full name of another layer's tensor it uses instead
    # For a node made by a block imported from a library (its `source` is in the library file): the layer of the
    # spec's own file that applied the block, and where that layer is written, so messages can point there too.
    used_at: tuple[str, Location] | None = None

    @property
    def place(self) -> str:
        """Where a message about this node points the reader, beyond `source`: the spec's own use of an
        imported block ("" for a node of the spec's own layers)."""
        return f" (in {self.used_at[0]!r}, which uses the imported block at {self.used_at[1]})" if self.used_at else ""

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
    outputs: tuple[str, ...] = ()
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
        self.outputs = tuple(new if o == old else o for o in self.outputs)

    # -- reading --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def added_since(self, count: int) -> list[Node]:
        """The nodes added after the graph had `count` nodes, in order (for lowering, which only adds)."""
        return list(islice(reversed(self._nodes.values()), max(0, len(self._nodes) - count)))[::-1]

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
    def output(self) -> str | None:
        """The first output (the only one, for most networks)."""
        return self.outputs[0] if self.outputs else None

    @property
    def output_shape(self) -> Shape:
        return self.output_shapes[0]

    @property
    def output_shapes(self) -> tuple[Shape, ...]:
        shapes = tuple(self._nodes[o].shape for o in self.outputs if o in self._nodes)
        if not self.outputs or len(shapes) != len(self.outputs) or any(s is None for s in shapes):
            raise GraphError("graph outputs or their shapes are not set; run shape inference")
        return shapes  # type: ignore[return-value]

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
                    problems.append(
                        f"{node.name!r} reads {src!r}, declared after it: keep declaration order topological"
                    )
            if shapes and node.shape is None:
                problems.append(f"{node.name!r} has no shape: run InferShapes after changing the graph")
            if node.shape is not None and any((not isinstance(d, int)) or d < 1 for d in node.shape):
                problems.append(f"{node.name!r} has a non-positive or non-integer dimension {node.shape}")
            for tensor, init in node.init:
                if (init.kind == VALUES) != bool(init.values):
                    problems.append(
                        f"{node.name!r} init of {tensor!r}: a {init.kind} init with {len(init.values)} values; "
                        "only kind 'values' lists values, and it lists at least one"
                    )
            seen.add(node.name)
        if not self.outputs:
            problems.append("the graph has no output: set outputs to the nodes the network returns")
        for out in self.outputs:
            if out not in self._nodes:
                problems.append(f"output {out!r} is not a node of the graph")
        if not nx.is_directed_acyclic_graph(self._dag):
            problems.append("the graph has a cycle")
        if set(self._dag.nodes) != set(self._nodes):
            problems.append("the networkx view and the node table disagree: edit the graph only through Graph methods")
        if problems:
            raise GraphError(f"IR graph {self.name!r} is malformed:\n  " + "\n  ".join(problems))

    def copy(self) -> Graph:
        return Graph(self.name, dict(self._nodes), self._dag.copy(), self.outputs, dict(self._order), self.naming)

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
