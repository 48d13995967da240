"""The torch backend object the registry instantiates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import io
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from archspec.backends import BuildOptions
from archspec.backends.artifacts import write_bytes_atomically
from archspec.backends.torch.codegen import generate
from archspec.backends.torch.lowering import LOWERINGS, Lowering
from archspec.backends.torch.optimize import apply_plan
from archspec.backends.torch.weights import load_reference_weights
from archspec.errors import ArchspecError
from archspec.ir import Graph

EXAMPLE_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2 and mark the axis dynamic


class TorchBackend:
    name = "torch"
    suffix = ".pt2"

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., Any]] | None = None):
        self.table: dict[str, Lowering] = {**LOWERINGS, **(extra_lowerings or {})}

    def supports(self, op: str) -> bool:
        return op in self.table

    def unsupported(self, graph: Graph) -> list[str]:
        return sorted({node.op for node in graph.ops if node.op not in self.table})

    def build(self, graph: Graph, options: BuildOptions) -> fx.GraphModule:
        missing = self.unsupported(graph)
        if missing:
            raise ArchspecError("AS803", f"the torch backend cannot lower op(s) {missing}; install the plugin that provides them")
        source = options.optimized.source if options.optimized else graph
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            module = generate(source, self.table, graph.name)
        if options.weights is not None:
            load_reference_weights(module, Path(options.weights))
        if options.optimized is not None:
            module = apply_plan(module, options.optimized, self.table)
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def save(self, artifact: nn.Module, graph: Graph, path: Path) -> None:
        """torch.export the module (eval mode, dynamic batch) and write it atomically."""
        shape = graph.input.shape or ()
        example = torch.zeros(EXAMPLE_BATCH, *shape)
        batch = torch.export.Dim("batch", min=1)
        was_training = artifact.training
        artifact.eval()
        try:
            program = torch.export.export(artifact, (example,), dynamic_shapes=({0: batch},))
        finally:
            artifact.train(was_training)
        # In memory first, then written by Python: torch's C++ writer aborts the process on a full disk.
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        write_bytes_atomically(path, buffer.getbuffer())
