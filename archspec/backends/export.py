"""What the torch-based backends share: torch.export with the spec's dynamic dimensions.

The torch, onnx, aoti and tensorrt backends all start from one `ExportedProgram`, exported here once
with the batch range (and, where the spec declares one, the resolution or sequence range) of `DynamicDims`, so no
backend asks the user to repeat them and no two backends disagree about them. Where an artifact goes and
how it is written (staged, atomically) is `archspec.backends.artifacts`, for every backend.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archspec.backends import DynamicDims, Range
from archspec.errors import ArchspecError
from archspec.ir import Graph

EXAMPLE_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2 where the range allows


def _example(size: int, r: Range) -> int:
    return min(max(size, r.min), r.max)


def example_shape(graph: Graph, dynamic: DynamicDims) -> tuple[int, ...]:
    """The batched shape exports trace with: batch 2 and the spec's own input size (a dynamic sequence at
    least 2 long, which torch.export does not specialise)."""
    shape = tuple(graph.input.shape or ())
    s = dynamic.sequence
    if s is not None and not s.static and shape:
        shape = (_example(max(shape[0], 2), s), *shape[1:])
    return (_example(EXAMPLE_BATCH, dynamic.batch), *shape)


def example_input(graph: Graph, dynamic: DynamicDims) -> torch.Tensor:
    """The tensor exports trace with: zeros of the example shape, float32, or int64 token ids (id 0, valid in
    every vocabulary) for an int64 input."""
    dtype = torch.int64 if graph.input.dtype == "int64" else torch.float32
    return torch.zeros(*example_shape(graph, dynamic), dtype=dtype)


def dynamic_shapes(graph: Graph, dynamic: DynamicDims) -> dict[int, Any]:
    """torch.export's dynamic_shapes entry for the one input: axis -> Dim (static axes left out). With a
    `multiple` m, a size is m times a Dim over [min / m, max / m] (torch.export's way of saying so)."""
    dims: dict[int, Any] = {}
    if not dynamic.batch.static:
        dims[0] = torch.export.Dim("batch", min=dynamic.batch.min, max=dynamic.batch.max)
    m = dynamic.multiple

    def size(name: str, r: Range) -> Any:
        return (
            torch.export.Dim(name, min=r.min, max=r.max)
            if m == 1
            else m * torch.export.Dim(f"{name}_{m}", min=r.min // m, max=r.max // m)
        )

    r = dynamic.resolution
    if r is not None and not r.static:
        dims[2] = size("height", r)
        dims[3] = size("width", r)
    s = dynamic.sequence
    if s is not None and not s.static:
        dims[1] = size("sequence", s)
    return dims


def check_sequence(graph: Graph, dynamic: DynamicDims) -> None:
    """A sequence range needs a [T] or [T, D] input whose own length lies inside it."""
    s, shape = dynamic.sequence, graph.input.shape or ()
    if s is None:
        return
    where = f"{dynamic.source}: " if dynamic.source else ""
    if len(shape) not in (1, 2):
        raise ArchspecError(
            "AS808", f"{where}dynamic: sequence needs a [T] or [T, D] input; this input is {list(shape)}"
        )
    if not s.min <= shape[0] <= s.max:
        raise ArchspecError(
            "AS808", f"{where}dynamic: sequence [{s.min}, {s.max}] must include the input's own length {shape[0]}"
        )


def check_resolution(graph: Graph, dynamic: DynamicDims) -> None:
    """A resolution range needs a [C, H, W] input whose own size lies inside it."""
    r, shape = dynamic.resolution, graph.input.shape or ()
    if r is None:
        return
    where = f"{dynamic.source}: " if dynamic.source else ""
    if len(shape) != 3:
        raise ArchspecError("AS808", f"{where}dynamic: resolution needs a [C, H, W] input; this input is {list(shape)}")
    if not all(r.min <= side <= r.max for side in shape[1:]):
        raise ArchspecError(
            "AS808",
            f"{where}dynamic: resolution [{r.min}, {r.max}] must include the input's own size {list(shape[1:])}",
        )
    if any(side % dynamic.multiple for side in shape[1:]):
        raise ArchspecError(
            "AS808", f"{where}dynamic: multiple {dynamic.multiple} must divide the input's own size {list(shape[1:])}"
        )


def export_program(module: nn.Module, graph: Graph, dynamic: DynamicDims) -> torch.export.ExportedProgram:
    """torch.export `module` in eval mode with the spec's dynamic dimensions (its train mode is restored).

    A network that cannot take every size of the declared range (a ViT's patch size must divide the side)
    fails torch.export's constraint check: that is an AS808 error pointing at the spec's `dynamic:`."""
    check_resolution(graph, dynamic)
    check_sequence(graph, dynamic)
    example = example_input(graph, dynamic)
    dims = dynamic_shapes(graph, dynamic)
    was_training = module.training
    module.eval()
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=(dims or None,) if dims else None)
    except Exception as exc:  # torch's constraint and guard errors carry the reason; never a traceback
        where = f"{dynamic.source}: " if dynamic.source else ""
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        first = " ".join([lines[0], *(line.strip() for line in lines[1:] if line.strip().startswith("- "))][:3])
        raise ArchspecError(
            "AS808",
            f"{where}torch.export cannot export the network for its input sizes "
            f"(batch {_show(dynamic.batch)}, {_sizes(dynamic)}): "
            f"{type(exc).__name__}: {first}. If the spec declares dynamic:, narrow its ranges",
        ) from None
    finally:
        module.train(was_training)
    probe_sizes(program, graph, dynamic)
    return program


def probe_sizes(program: torch.export.ExportedProgram, graph: Graph, dynamic: DynamicDims) -> None:
    """Run the program on fake tensors (shapes only, no arithmetic) at the edges and the middle of a declared
    resolution range. torch.export turns some size conditions into run-time assertions instead of refusing
    the range (a ViT exported at 32 with a range [32, 64] works up to 47): this finds them at build time."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    r, s = dynamic.resolution, dynamic.sequence
    shapes: list[tuple[int, ...]] = []
    if r is not None and not r.static:
        channels = (graph.input.shape or (0,))[0]
        m = dynamic.multiple
        middle = (r.min + r.max) // 2 // m * m
        sides = [(r.min, r.max), (r.max, r.min), (middle, middle), (r.min + m, r.min + m)]
        shapes = [(dynamic.batch.max, channels, r.max, r.max)]
        shapes += [(dynamic.batch.min, channels, h, w) for h, w in sides]
    if s is not None and not s.static:
        rest = tuple((graph.input.shape or ())[1:])
        m = dynamic.multiple
        shapes = [(dynamic.batch.max, s.max, *rest)] + [
            (dynamic.batch.min, t, *rest) for t in (s.min, (s.min + s.max) // 2 // m * m, s.min + m, s.max)
        ]
    if not shapes:
        return
    dtype = torch.int64 if graph.input.dtype == "int64" else torch.float32
    module = program.module()
    # One fake mode for every probe, the weights made fake once: each probe then reuses their fake copies
    # and fake dispatch's cache (yolov8n's five probes in a command's build: 2.2 s -> 1.5 s).
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        state: dict[str, torch.Tensor] = {
            name: mode.from_tensor(tensor) for name, tensor in [*module.named_parameters(), *module.named_buffers()]
        }
        for shape in dict.fromkeys(shapes):
            _probe(module, state, shape, dtype, dynamic)


def _probe(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    dynamic: DynamicDims,
) -> None:
    try:
        torch.func.functional_call(module, state, (torch.empty(*shape, dtype=dtype),))
    except Exception as exc:
        where = f"{dynamic.source}: " if dynamic.source else ""
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ArchspecError(
            "AS808",
            f"{where}the exported network does not take an input of shape {list(shape)}, "
            f"inside its dynamic: ranges (batch {_show(dynamic.batch)}, {_sizes(dynamic)}): "
            f"{lines[0]}. Narrow the ranges in the spec's dynamic:",
        ) from None


def _show(r: Range | None) -> str:
    return "static" if r is None else f"[{r.min}, {r.max}]"


def _sizes(dynamic: DynamicDims) -> str:
    """The declared size ranges besides the batch, for messages."""
    if dynamic.sequence is not None:
        return f"sequence {_show(dynamic.sequence)}"
    return f"resolution {_show(dynamic.resolution)}"
