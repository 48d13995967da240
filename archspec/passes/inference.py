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
        for name in [n.name for n in out if n.op in TRAINING_ONLY]:
            source = out.node(name).inputs[0]  # re-read: removing an earlier node may have rewired this one
            out.rewire(name, source)
            out.remove(name)
        return out
