"""Inference rewrites: drop what only matters while training."""

from __future__ import annotations

from dataclasses import dataclass

from archspec.ir import Graph

TRAINING_ONLY = frozenset({"dropout", "drop_path", "identity"})


@dataclass(frozen=True)
class DropTrainingOnly:
    """Remove dropout, drop_path and identity nodes, wiring their users to their input.

    Before: shapes inferred. After: no node of those ops remains; every other node, shape and the
    output's shape are unchanged (each removed op preserves shape), so counts are unchanged too.
    """

    name: str = "drop-training-only"

    def run(self, graph: Graph) -> Graph:
        out = graph.copy()
        for node in list(out):
            if node.op in TRAINING_ONLY:
                out.rewire(node.name, node.inputs[0])
                out.remove(node.name)
        return out
