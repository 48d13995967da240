"""IR -> IR passes and the analyses that read the IR (shapes, counts).

A pass is a small frozen object with a `name` and one method, `run(graph) -> graph`; its docstring
says what must hold before and after it. Passes never mutate their input graph.
"""

from archspec.passes.base import Pass, run_passes

__all__ = ["Pass", "run_passes"]
