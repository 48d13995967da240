"""The pass protocol and the runner, which lints the IR after each pass when asked (tests do)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from archspec.ir import Graph


class Pass(Protocol):
    @property
    def name(self) -> str: ...  # read-only, so that frozen dataclasses satisfy it

    def run(self, graph: Graph) -> Graph: ...


def run_passes(graph: Graph, passes: Sequence[Pass], *, lint: bool = False) -> Graph:
    for p in passes:
        graph = p.run(graph)
        if lint:
            graph.lint()
    return graph
