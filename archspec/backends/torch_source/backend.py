"""The torch-source backend object the registry instantiates.

`build` prints the torch backend's lowering table (its own and the plugins' torch lowerings: one table,
two backends) and, with --save-weights or --weights, makes the weights with the torch backend, so the same
seed or reference weights give the same tensors; `save` writes `<name>.py` and, on request,
`<name>.safetensors` beside it, both or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import keyword
from pathlib import Path
import re
from typing import Any

from archspec.backends import BuildOptions
from archspec.backends.coverage import NATIVE, CoverageTable, LayerSupport, Support, assess, refuse_unsupported
from archspec.errors import ArchspecError
from archspec.ir import Graph, Node, Shape
from archspec.names import MODULE_ATTRIBUTES
from archspec.ops.builtin import PLUGIN as BUILTIN

# The torch lowering table covers every built-in op (tests/test_torch_source.py checks it): coverage reads this,
# so `archspec check --backend torch-source` never imports torch; building does.
BUILTIN_OPS = frozenset(op.name for op in BUILTIN.ops)


@dataclass(frozen=True)
class Source:
    text: str
    class_name: str
    state: Mapping[str, Any] | None  # name -> torch.Tensor, when weights were asked for


class TorchSourceBackend:
    name = "torch-source"
    suffix = ".py"
    # Plugins register torch lowerings once (`lowerings={"torch": ...}`); this backend prints them.
    lowerings_of = ("torch", "torch-source")

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., Any]] | None = None):
        self.extra = dict(extra_lowerings or {})

    def supports(self, op: str) -> bool:
        return op in BUILTIN_OPS or op in self.extra

    def unsupported(self, graph: Graph) -> list[str]:
        return sorted({s.op for s in self.coverage(graph) if s.level == "unsupported"})

    def coverage(self, graph: Graph) -> list[LayerSupport]:
        def rule(node: Node, shapes: list[Shape] | Any) -> Support:
            problem = path_problem(node.name)
            return Support("unsupported", problem) if problem else NATIVE

        table: CoverageTable = {op: rule for op in (*BUILTIN_OPS, *self.extra)}
        return assess(graph, table, self.name)

    def build(self, graph: Graph, options: BuildOptions) -> Source:
        if options.settings:
            raise ArchspecError("AS809", f"the torch-source backend has no settings; got {sorted(options.settings)}")
        from archspec.backends.torch.lowering import LOWERINGS
        from archspec.backends.torch_source.render import render

        refuse_unsupported(self.coverage(graph), self.name)
        rendered = render(graph, {**LOWERINGS, **self.extra}, options.description)
        state = None
        if options.save_weights or options.weights is not None:
            from archspec.backends.torch.backend import TorchBackend

            module = TorchBackend().build(graph, options)
            state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        return Source(rendered.text, rendered.class_name, state)

    def save(self, artifact: Source, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        from archspec.backends.artifacts import staged

        if artifact.state is not None and path.suffix == ".safetensors":  # the weights would overwrite the source
            raise ArchspecError(
                "AS804",
                f"-o {path.name}: the weights are written beside the source as "
                f"{path.with_suffix('.safetensors').name}, which is the output path itself; "
                f"name the source file {path.with_suffix('.py').name}",
            )
        with staged(path) as target:
            target.write_text(artifact.text, encoding="utf-8")
            if artifact.state is not None:
                from safetensors.torch import save_file

                save_file(
                    dict(artifact.state),
                    str(target.with_suffix(".safetensors")),
                    metadata={"class": artifact.class_name},
                )


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def path_problem(name: str) -> str | None:
    """Why a layer's dotted name cannot be a submodule path in the generated class (None: it can). Validation
    refuses such names first (archspec.names); this guards a graph built another way."""
    for part in name.split("."):
        if part.isdigit():
            continue
        if not _IDENTIFIER.fullmatch(part) or keyword.iskeyword(part):
            return f"{part!r} is not an identifier"
        if part in MODULE_ATTRIBUTES:
            return f"{part!r} is an attribute of torch.nn.Module or its containers; rename the layer"
    return None
