"""The torch backend object the registry instantiates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import io
from pathlib import Path
from typing import Any
import weakref

import torch
from torch import fx, nn

from archspec.backends import BuildOptions
from archspec.backends.artifacts import write_bytes_atomically
from archspec.backends.coverage import LayerSupport, from_supports
from archspec.backends.export import export_program
from archspec.backends.torch.codegen import generate
from archspec.backends.torch.lowering import LOWERINGS, Lowering
from archspec.backends.torch.optimize import apply_plan
from archspec.backends.torch.weights import computed_buffers, load_reference_weights, pair_state_dict, read_state_dict
from archspec.errors import ArchspecError
from archspec.ir import Graph


class TorchBackend:
    name = "torch"
    suffix = ".pt2"

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., Any]] | None = None):
        self.table: dict[str, Lowering] = {**LOWERINGS, **(extra_lowerings or {})}

    def supports(self, op: str) -> bool:
        return op in self.table

    def unsupported(self, graph: Graph) -> list[str]:
        return sorted({node.op for node in graph.ops if node.op not in self.table})

    def coverage(self, graph: Graph) -> list[LayerSupport]:
        return from_supports(graph, self.supports, self.name)

    def build(self, graph: Graph, options: BuildOptions) -> fx.GraphModule:
        missing = self.unsupported(graph)
        if missing:
            raise ArchspecError(
                "AS803", f"the torch backend cannot lower op(s) {missing}; install the plugin that provides them"
            )
        source = options.optimized.source if options.optimized else graph
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            module = generate(source, self.table, graph.name)
        if options.weights is not None:
            pairing = load_reference_weights(module, Path(options.weights), source)
            if options.report is not None:
                options.report(pairing.summary(str(options.weights)))
        if options.optimized is not None:
            module = apply_plan(module, options.optimized, self.table)
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return weakly_owned(module)

    def convert_weights(self, graph: Graph, options: BuildOptions, path: Path) -> None:
        """Write the checkpoint `options.weights` under the graph's tensor names (.safetensors), paired as
        --weights pairs it. The module is made on the meta device: only names and shapes are needed."""
        from safetensors.torch import save

        assert options.weights is not None
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            module = generate(graph, self.table, graph.name, fill=False)
        state = module.state_dict()
        source = Path(options.weights)
        computed = computed_buffers(state, graph)
        for name in computed:  # made off the meta device, so the checkpoint's copies are compared by value
            state[name] = self.table[graph.node(name).op](graph.node(name), graph.input_shapes(graph.node(name))).value  # type: ignore[union-attr]
        pairing = pair_state_dict(
            state, read_state_dict(source), graph, ordered=source.suffix != ".safetensors", computed=computed
        )
        tensors = {k: v.to(state[k].dtype).contiguous() for k, v in pairing.mapped.items()}
        data = save(tensors, metadata={"archspec_spec": graph.name, "source": Path(options.weights).name})
        write_bytes_atomically(path, data)
        if options.report is not None:
            options.report(pairing.summary(str(options.weights)))

    def save(self, artifact: nn.Module, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        """torch.export the module (eval mode, the spec's dynamic dimensions) and write it atomically.

        The archive is made in memory and written by Python (torch's C++ writer aborts the process on a
        full disk); its inner folder name is fixed, so the same spec and seed give the same bytes."""
        program = export_program(artifact, graph, options.dynamic)
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        write_bytes_atomically(path, buffer.getbuffer())


class _WeaklyOwnedGraph(fx.Graph):
    """An fx.Graph whose link back to its GraphModule is a weak reference.

    fx links the two both ways (module._graph, graph._owning_module), so a built module could only be
    freed by the cyclic collector: its parameters stayed allocated until the next full collection, and
    every collection in between walked them. With the back link weak, dropping the last reference to the
    module frees it (and its tensors) at once; `graph.owning_module` still answers while the module lives.
    """

    @property
    def _owning_module(self) -> fx.GraphModule | None:
        ref = self.__dict__.get("_owner")
        return None if ref is None else ref()

    @_owning_module.setter
    def _owning_module(self, module: fx.GraphModule | None) -> None:
        self.__dict__["_owner"] = None if module is None else weakref.ref(module)


def weakly_owned(module: fx.GraphModule) -> fx.GraphModule:
    """`module`, its graph's back link made weak (see _WeaklyOwnedGraph)."""
    graph = module.graph
    if type(graph) is fx.Graph:
        owner = graph.__dict__.pop("_owning_module", None)
        graph.__class__ = _WeaklyOwnedGraph
        graph._owning_module = owner
    return module
