"""The tensorrt backend object the registry instantiates.

    build   settings (checked) -> coverage (refuses what it cannot compile) -> toolchain present? (torch_tensorrt,
            a CUDA GPU) -> the torch module on the GPU -> torch.export with the spec's dynamic dimensions
            (archspec.backends.export, shared with the other backends) -> torch_tensorrt.dynamo.compile with an
            Input profile min/opt/max from the same dimensions
    save    `<name>.trt.ep`: an ExportedProgram with the TensorRT engines embedded (torch_tensorrt.save), and
            with `--option engine=true` `<name>.engine` beside it, a serialized engine for other TensorRT
            runtimes; both or neither

torch-tensorrt is imported only here, only when the backend runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions, DynamicDims
from archspec.backends.coverage import TableBackend, refuse_unsupported
from archspec.errors import ArchspecError
from archspec.ir import Graph
from archspec_tensorrt.coverage import COVERAGE
from archspec_tensorrt.settings import Settings, check_signature, compile_kwargs, parse

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """TensorRT's optimisation profile for the one input: shapes at min, opt and max."""

    min: Shape
    opt: Shape
    max: Shape


def profile(graph: Graph, dynamic: DynamicDims) -> Profile:
    shape = tuple(graph.input.shape or ())
    b, r = dynamic.batch, dynamic.resolution

    def at(batch: int, side: int | None) -> Shape:
        return (batch, *shape) if side is None else (batch, shape[0], side, side)

    return Profile(at(b.min, r and r.min), at(b.opt, r and r.opt), at(b.max, r and r.max))


def require_toolchain(cuda_available: bool) -> None:
    if importlib.util.find_spec("torch_tensorrt") is None:
        raise ArchspecError("AS810", "the tensorrt backend needs the package torch-tensorrt (2.14, with TensorRT's "
                            "tensorrt-cu13 libraries), which is not installed; pip install archspec-tensorrt on a "
                            "machine with a CUDA GPU")
    if not cuda_available:
        raise ArchspecError("AS810", "the tensorrt backend needs a CUDA GPU; none is available here")


@dataclass(frozen=True)
class Compiled:
    module: Any  # the torch.fx.GraphModule torch_tensorrt.dynamo.compile returns
    program: Any  # the ExportedProgram it was compiled from (for the serialized engine)
    example: Any  # an input tensor inside the profile, for torch_tensorrt.save
    inputs: list[Any]  # the torch_tensorrt.Input profile
    kwargs: dict[str, Any]
    settings: Settings


def compile_program(trt: Any, program: Any, example: Any, prof: Profile, settings: Settings, dtypes: Mapping[str, Any]) -> Compiled:
    """The torch-tensorrt call itself; `trt` is the torch_tensorrt module."""
    inputs = [trt.Input(min_shape=prof.min, opt_shape=prof.opt, max_shape=prof.max, dtype=example.dtype, name="x")]
    kwargs = compile_kwargs(settings, dtypes)
    check_signature(trt.dynamo.compile, kwargs)
    try:
        module = trt.dynamo.compile(program, arg_inputs=inputs, **kwargs)
    except ArchspecError:
        raise
    except Exception as exc:
        raise ArchspecError("AS808", f"torch-tensorrt could not compile the network: {type(exc).__name__}: "
                            f"{(str(exc).strip().splitlines() or [''])[0]}") from None
    return Compiled(module, program, example, inputs, kwargs, settings)


class TensorRTBackend(TableBackend):
    name = "tensorrt"
    suffix = ".trt.ep"

    COVERAGE = COVERAGE
    PLUGIN_NOTE = "a plugin op, through its torch lowering (PyTorch where TensorRT has no converter)"

    def export(self, graph: Graph, options: BuildOptions, device: str) -> tuple[Any, Any]:
        """The torch backend's module, eval mode, on `device`, exported with the spec's dynamic dimensions;
        and an example input at the profile's opt shape."""
        import torch

        from archspec.backends.export import export_program
        from archspec.backends.torch.backend import TorchBackend

        module = TorchBackend(extra_lowerings=self.extra).build(graph, options).to(device).eval()
        with torch.device(device):
            program = export_program(module, graph, options.dynamic)
        return program, torch.zeros(profile(graph, options.dynamic).opt, device=device)

    def build(self, graph: Graph, options: BuildOptions) -> Compiled:
        settings = parse(options.settings)
        refuse_unsupported(self.coverage(graph), self.name)
        import torch

        require_toolchain(torch.cuda.is_available())
        if settings.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ArchspecError("AS810", "tensorrt: precision=bf16 needs a GPU with bfloat16 support (Ampere or newer)")
        import torch_tensorrt

        program, example = self.export(graph, options, "cuda")
        return compile_program(torch_tensorrt, program, example, profile(graph, options.dynamic), settings,
                               {"fp16": torch.float16, "bf16": torch.bfloat16})

    def save(self, artifact: Compiled, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        import torch_tensorrt

        from archspec.backends.artifacts import staged

        with staged(path) as target:
            save_artifacts(torch_tensorrt, artifact, target)


def save_artifacts(trt: Any, artifact: Compiled, target: Path) -> None:
    """Write the TensorRT-embedded ExportedProgram to `target` and, on request, the serialized engine beside
    it (`<stem>.engine`, where the stem drops `.trt.ep`)."""
    trt.save(artifact.module, str(target), output_format="exported_program", arg_inputs=[artifact.example], retrace=True)
    if artifact.settings.engine:
        convert = trt.dynamo.convert_exported_program_to_serialized_trt_engine
        check_signature(convert, artifact.kwargs)
        engine = convert(artifact.program, arg_inputs=artifact.inputs, **artifact.kwargs)
        stem = target.name[: -len(".trt.ep")] if target.name.endswith(".trt.ep") else target.stem
        (target.parent / f"{stem}.engine").write_bytes(bytes(engine))
