"""The torch-source backend object the registry instantiates.

`build` renders the file (and, with --save-weights or --weights, makes the weights with the torch backend,
so the same seed or reference weights give the same tensors); `save` writes `<name>.py` and, on request,
`<name>.safetensors` beside it, both or neither. torch is imported only for the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions
from archspec.backends.coverage import NATIVE, CoverageTable, LayerSupport, Support, assess, refuse_unsupported
from archspec.backends.torch_source.lowering import LOWERINGS, Lowering
from archspec.backends.torch_source.render import path_problem, render
from archspec.errors import ArchspecError
from archspec.ir import Graph, Node, Shape


@dataclass(frozen=True)
class Source:
    text: str
    class_name: str
    state: Mapping[str, Any] | None  # name -> torch.Tensor, when weights were asked for


class TorchSourceBackend:
    name = "torch-source"
    suffix = ".py"

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., Any]] | None = None):
        self.table: dict[str, Lowering] = {**LOWERINGS, **(extra_lowerings or {})}

    def supports(self, op: str) -> bool:
        return op in self.table

    def unsupported(self, graph: Graph) -> list[str]:
        return sorted({s.op for s in self.coverage(graph) if s.level == "unsupported"})

    def coverage(self, graph: Graph) -> list[LayerSupport]:
        def rule(node: Node, shapes: list[Shape] | Any) -> Support:
            problem = path_problem(node.name)
            return Support("unsupported", problem) if problem else NATIVE

        table: CoverageTable = {op: rule for op in self.table}
        return assess(graph, table, self.name)

    def build(self, graph: Graph, options: BuildOptions) -> Source:
        if options.settings:
            raise ArchspecError("AS809", f"the torch-source backend has no settings; got {sorted(options.settings)}")
        refuse_unsupported(self.coverage(graph), self.name)
        rendered = render(graph, self.table, options.description)
        state = None
        if options.save_weights or options.weights is not None:
            from archspec.backends.torch.backend import TorchBackend

            module = TorchBackend().build(graph, options)
            state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        return Source(rendered.text, rendered.class_name, state)

    def save(self, artifact: Source, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        from archspec.backends.artifacts import staged

        with staged(path) as target:
            target.write_text(artifact.text, encoding="utf-8")
            if artifact.state is not None:
                from safetensors.torch import save_file

                save_file(dict(artifact.state), str(target.with_suffix(".safetensors")),
                          metadata={"class": artifact.class_name})
