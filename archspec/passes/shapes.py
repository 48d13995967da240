"""Shape inference over a whole graph."""

from __future__ import annotations

from dataclasses import dataclass

from archspec.ir import Graph, GraphError
from archspec.ops.base import ShapeError
from archspec.registry import Registry


@dataclass(frozen=True)
class InferShapes:
    """Recompute every op node's shape from its inputs.

    Before: the input node has a shape; nodes are in topological order; every op is registered.
    After: every node has the shape its op declares for its inputs. Lowering already infers shapes
    as it builds; run this after any pass that changes nodes or edges.
    """

    registry: Registry
    name: str = "infer-shapes"

    def run(self, graph: Graph) -> Graph:
        out = graph.copy()
        for node in out:
            if node.kind != "op":
                continue
            op = self.registry.op(node.op)
            try:
                shape = op.shape(node.params, out.input_shapes(node))
            except ShapeError as exc:
                raise GraphError(
                    f"{node.op} {node.name!r} {exc.expects} (after a rewrite: a pass broke the graph)"
                ) from exc
            out.replace(node.name, shape=shape)
        return out
