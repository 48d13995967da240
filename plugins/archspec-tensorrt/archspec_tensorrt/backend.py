"""The tensorrt backend object the registry instantiates.

    build   settings (checked) -> coverage (refuses what it cannot compile) -> toolchain present? (torch_tensorrt,
            a CUDA GPU) -> the torch module on the GPU -> torch.export with the spec's dynamic dimensions
            (archspec.backends.export, shared with the other backends) -> torch_tensorrt.dynamo.compile with an
            Input profile min/opt/max from the same dimensions
    save    `<name>.trt.ep`: an ExportedProgram with the TensorRT engines embedded (torch_tensorrt.save), and
            with `--option engine=true` `<name>.engine` beside it, a serialized engine for other TensorRT
            runtimes; both or neither. The program is saved with the same dynamic dimensions it was exported
            with (torch_tensorrt.save's dynamic_shapes), so it loads at any batch of the profile, not only at
            the example's

torch-tensorrt is imported only here, only when the backend runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions, DynamicDims, Range
from archspec.backends.coverage import TableBackend, refuse_unsupported
from archspec.errors import ArchspecError
from archspec.ir import Graph
from archspec_tensorrt.coverage import COVERAGE
from archspec_tensorrt.settings import Settings, check_signature, compile_kwargs, engine_kwargs, parse

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """TensorRT's optimisation profile for the one input: shapes at min, opt and max."""

    min: Shape
    opt: Shape
    max: Shape


def profile(graph: Graph, dynamic: DynamicDims) -> Profile:
    """The spec's batch range, and its resolution (H, W of [C, H, W]) or sequence (T of [T] or [T, D]) range."""
    shape = tuple(graph.input.shape or ())
    b, r, s = dynamic.batch, dynamic.resolution, dynamic.sequence

    def at(batch: int, side: int | None, length: int | None) -> Shape:
        sizes = list(shape)
        if side is not None:
            sizes[1:3] = [side, side]
        if length is not None:
            sizes[0] = length
        return (batch, *sizes)

    def size(r: Range | None, k: str) -> int | None:
        return None if r is None else int(getattr(r, k))

    return Profile(*(at(getattr(b, k), size(r, k), size(s, k)) for k in ("min", "opt", "max")))


def require_toolchain(cuda_available: bool) -> None:
    if importlib.util.find_spec("torch_tensorrt") is None:
        raise ArchspecError(
            "AS810",
            "the tensorrt backend needs the package torch-tensorrt (2.14, with TensorRT's "
            "tensorrt-cu13 libraries), which is not installed; pip install archspec-tensorrt on a "
            "machine with a CUDA GPU",
        )
    if not cuda_available:
        raise ArchspecError("AS810", "the tensorrt backend needs a CUDA GPU; none is available here")


def example_input(graph: Graph, dynamic: DynamicDims, device: str) -> Any:
    """Zeros at the profile's opt shape: float32, or int64 token ids for an int64 input (as export_program's)."""
    import torch

    dtype = torch.int64 if graph.input.dtype == "int64" else torch.float32
    return torch.zeros(profile(graph, dynamic).opt, dtype=dtype, device=device)


@dataclass(frozen=True)
class Compiled:
    module: Any  # the torch.fx.GraphModule torch_tensorrt.dynamo.compile returns
    program: Any  # the ExportedProgram it was compiled from (for the serialized engine)
    example: Any  # an input tensor at the profile's opt shape, for torch_tensorrt.save
    inputs: list[Any]  # the torch_tensorrt.Input profile
    kwargs: dict[str, Any]
    settings: Settings
    dims: Mapping[int, Any]  # the input's torch.export dynamic dimensions (axis -> Dim), as the program was exported


def compile_program(
    trt: Any,
    program: Any,
    example: Any,
    prof: Profile,
    settings: Settings,
    dtypes: Mapping[str, Any],
    dims: Mapping[int, Any],
) -> Compiled:
    """The torch-tensorrt call itself; `trt` is the torch_tensorrt module. Every keyword of every later call
    (the engine's too) is checked against the installed torch-tensorrt first, so none is refused after a compile."""
    inputs = [trt.Input(min_shape=prof.min, opt_shape=prof.opt, max_shape=prof.max, dtype=example.dtype, name="x")]
    kwargs = compile_kwargs(settings, dtypes)
    check_signature(trt.dynamo.compile, {"arg_inputs": inputs, **kwargs})
    check_signature(trt.save, save_kwargs(example, {}))
    if settings.engine:
        check_signature(
            trt.dynamo.convert_exported_program_to_serialized_trt_engine,
            {"arg_inputs": inputs, **engine_kwargs(settings)},
        )
    try:
        module = trt.dynamo.compile(program, arg_inputs=inputs, **kwargs)
    except ArchspecError:
        raise
    except Exception as exc:
        raise ArchspecError(
            "AS808",
            f"torch-tensorrt could not compile the network: {type(exc).__name__}: "
            f"{(str(exc).strip().splitlines() or [''])[0]}",
        ) from None
    return Compiled(module, program, example, inputs, kwargs, settings, dims)


class TensorRTBackend(TableBackend):
    name = "tensorrt"
    suffix = ".trt.ep"

    COVERAGE = COVERAGE
    PLUGIN_NOTE = "a plugin op, through its torch lowering (PyTorch where TensorRT has no converter)"

    def export(self, graph: Graph, options: BuildOptions, device: str) -> tuple[Any, Any, dict[int, Any]]:
        """The torch backend's module, eval mode, on `device`, exported with the spec's dynamic dimensions;
        an example input at the profile's opt shape; and those dimensions (axis -> torch.export.Dim)."""
        import torch

        from archspec.backends.export import dynamic_shapes, export_program
        from archspec.backends.torch.backend import TorchBackend

        module = TorchBackend(extra_lowerings=self.extra).build(graph, options).to(device).eval()
        with torch.device(device):
            program = export_program(module, graph, options.dynamic)
        example = example_input(graph, options.dynamic, device)
        return program, example, dynamic_shapes(graph, options.dynamic)

    def build(self, graph: Graph, options: BuildOptions) -> Compiled:
        settings = parse(options.settings)
        refuse_unsupported(self.coverage(graph), self.name)
        import torch

        require_toolchain(torch.cuda.is_available())
        if settings.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ArchspecError("AS810", "tensorrt: precision=bf16 needs a GPU with bfloat16 support (Ampere or newer)")
        import torch_tensorrt

        program, example, dims = self.export(graph, options, "cuda")
        return compile_program(
            torch_tensorrt,
            program,
            example,
            profile(graph, options.dynamic),
            settings,
            {"fp16": torch.float16, "bf16": torch.bfloat16},
            dims,
        )

    def save(self, artifact: Compiled, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        import torch_tensorrt

        from archspec.backends.artifacts import staged

        with staged(path) as target:
            save_artifacts(torch_tensorrt, artifact, target)


def save_kwargs(example: Any, dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of torch_tensorrt.save: re-export the compiled module with the example input and the
    dynamic dimensions it was exported with. Without `dynamic_shapes` (and with a plain tensor, not Inputs)
    torch_tensorrt.save re-traces at the example's sizes, and the saved program takes only batch 32."""
    return {
        "output_format": "exported_program",
        "arg_inputs": [example],
        "dynamic_shapes": dynamic or None,
        "retrace": True,
    }


def save_artifacts(trt: Any, artifact: Compiled, target: Path) -> None:
    """Write the TensorRT-embedded ExportedProgram to `target` and, on request, the serialized engine beside
    it (`<stem>.engine`, where the stem drops `.trt.ep`)."""
    # torch.export's dynamic_shapes dict is keyed by the forward's parameter name (torch-tensorrt's own
    # inference from Inputs keys it the same way); the compiled module keeps the program's input name.
    name = next(iter(inspect.signature(artifact.module.forward).parameters))
    trt.save(
        artifact.module,
        str(target),
        **save_kwargs(artifact.example, {name: dict(artifact.dims)} if artifact.dims else {}),
    )
    if artifact.settings.engine:
        convert = trt.dynamo.convert_exported_program_to_serialized_trt_engine
        engine = convert(artifact.program, arg_inputs=artifact.inputs, **engine_kwargs(artifact.settings))
        stem = target.name[: -len(".trt.ep")] if target.name.endswith(".trt.ep") else target.stem
        (target.parent / f"{stem}.engine").write_bytes(bytes(engine))
