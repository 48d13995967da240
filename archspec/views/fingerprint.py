"""A canonical SHA-256 of the lowered IR: what the network computes, not how the spec spells it.

Hashed: every node's op, its arguments (the op's parameter model with defaults filled in, so an
argument written out at its default equals one left out), its output shape, and the edges, in a
canonical topological order; the input shape; which node is the output. Not hashed: layer names,
the spec's name, formatting, comments, key order, and how the spec got there (blocks, repeats,
variants, expressions). Two specs that build the same network therefore share a fingerprint.

The canonical order does not depend on names or declaration order: each node gets a structural key,
the hash of what feeds it (op, arguments, shape and its inputs' keys, in input order) together with
the hash of what it feeds, and ready nodes are taken smallest key first (Kahn's algorithm). Nodes
whose keys tie are interchangeable in both directions, so either order gives the same text.

Backends key compiled artifacts on `artifact_key`, which adds what an artifact does depend on beyond
the network: layer names (they become state-dict keys and module attributes), the backend and its
options. The format is versioned (`FORMAT`); a change of it changes every fingerprint on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
import hashlib
import heapq
import json
from typing import Any

from archspec.ir import Graph, Node

FORMAT = "archspec-fingerprint-2"  # 2: arguments at their default and float32 dtypes are left out


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _output_position(graph: Graph, name: str) -> bool | list[int]:
    """Whether a node is the output; with several outputs, the places it takes among them (so a network
    with one output hashes as it always has)."""
    if len(graph.outputs) <= 1:
        return name == graph.output
    return [k for k, out in enumerate(graph.outputs) if out == name]


def _arguments(node: Node) -> Any:
    # Arguments left at their default are left out, so an op that gains an optional argument (linear's
    # tie:, attention's causal:) keeps the fingerprint of every network that does not use it.
    return node.params.model_dump(mode="json", exclude_defaults=True) if node.params is not None else None


def _local(node: Node) -> list[Any]:
    # The element type only where it is not float32 (token ids), for the same reason.
    return [node.op, _arguments(node), list(node.shape or ())] + ([node.dtype] if node.dtype != "float32" else [])


def structural_keys(graph: Graph) -> dict[str, str]:
    """Per node, a hash of its op, arguments and shape and of everything upstream and downstream of it."""
    nodes = list(graph)  # declaration order is topological (Graph.lint)
    up: dict[str, str] = {}
    for node in nodes:
        up[node.name] = _digest(_local(node), [up[src] for src in node.inputs])
    users: dict[str, list[tuple[str, int]]] = {node.name: [] for node in nodes}
    for node in nodes:
        for position, src in enumerate(node.inputs):
            users[src].append((node.name, position))
    down: dict[str, str] = {}
    for node in reversed(nodes):
        feeds = sorted(_digest(_local(graph.node(user)), position, down[user]) for user, position in users[node.name])
        down[node.name] = _digest(_output_position(graph, node.name), feeds)
    return {name: _digest(up[name], down[name]) for name in up}


def canonical_order(graph: Graph) -> list[str]:
    keys = structural_keys(graph)
    waiting = {node.name: len(node.inputs) for node in graph}
    users: dict[str, list[str]] = {node.name: [] for node in graph}
    for node in graph:
        for src in node.inputs:
            users[src].append(node.name)
    ready = [(keys[name], name) for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (keys[user], user))
    return order


def canonical_form(graph: Graph) -> dict[str, Any]:
    """The hashed text as data: nodes in canonical order, inputs as positions in that order."""
    order = canonical_order(graph)
    position = {name: k for k, name in enumerate(order)}
    nodes = [[*_local(graph.node(name)), [position[src] for src in graph.node(name).inputs]] for name in order]
    if len(graph.outputs) > 1:
        return {"format": FORMAT, "nodes": nodes, "outputs": [position[o] for o in graph.outputs]}
    return {"format": FORMAT, "nodes": nodes, "output": position[graph.output] if graph.output else None}


def fingerprint(graph: Graph) -> str:
    """The network's canonical SHA-256 (hex)."""
    return hashlib.sha256(json.dumps(canonical_form(graph), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def artifact_key(graph: Graph, backend: str, options: Mapping[str, Any] | None = None) -> str:
    """A cache key for a backend's compiled artifact: the fingerprint plus the layer names in canonical
    order, the backend's name and its options (anything JSON can write; others by repr)."""
    names = canonical_order(graph)
    settings = {
        str(k): v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in (options or {}).items()
    }
    return _digest(fingerprint(graph), names, backend, settings)
