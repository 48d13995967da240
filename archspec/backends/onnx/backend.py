"""The ONNX backend object the registry instantiates.

Plugins add ops to it the way they add them to the torch backend: `lowerings={"onnx": "pkg:TORCH_TABLE"}`
hands it torch lowerings (the ONNX graph is exported from the torch module); such ops are reported as
fallbacks, since this backend cannot say which ONNX operators they become.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import re
from typing import Any

from archspec import extras
from archspec.backends import BuildOptions
from archspec.backends.coverage import TableBackend, refuse_unsupported
from archspec.backends.onnx.coverage import COVERAGE, OPSET
from archspec.errors import ArchspecError
from archspec.ir import Graph

REQUIRED = ("torch", "onnx", "onnxscript")  # torch.onnx's dynamo exporter needs onnx and onnxscript
AXIS_NAMES = {0: "batch", 2: "height", 3: "width"}
SEQUENCE_AXIS_NAMES = {0: "batch", 1: "sequence"}  # a [T] or [T, D] input


def require(packages: Sequence[str], backend: str, extra: str) -> None:
    extras.require(packages, f"the {backend} backend", extra)  # the one AS810 message for a missing package


class OnnxBackend(TableBackend):
    name = "onnx"
    suffix = ".onnx"

    COVERAGE = COVERAGE
    PLUGIN_NOTE = "a plugin op, exported through its torch lowering"

    def build(self, graph: Graph, options: BuildOptions) -> Any:
        """The torch.onnx ONNXProgram (dynamic batch axis, and H, W where the spec declares a range)."""
        if options.settings:
            raise ArchspecError("AS809", f"the onnx backend has no settings; got {sorted(options.settings)}")
        refuse_unsupported(self.coverage(graph), self.name)
        require(REQUIRED, self.name, "onnx")
        import torch

        from archspec.backends.export import export_program
        from archspec.backends.torch.backend import TorchBackend

        module = TorchBackend(extra_lowerings=self.extra).build(graph, options)
        program = export_program(module, graph, options.dynamic)
        try:
            return torch.onnx.export(
                program,
                (),
                dynamo=True,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                verbose=False,
            )
        except Exception as exc:  # the exporter's errors name the aten op it could not translate
            raise ArchspecError(
                "AS808",
                f"torch.onnx could not export {graph.name!r}: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            ) from None

    def save(self, artifact: Any, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        """Write `<name>.onnx` (weights over 2 GB go to `<name>.onnx.data` beside it), name the dynamic axes,
        and check the model with the full checker before it is moved into place."""
        import onnx

        from archspec.backends.artifacts import staged

        with staged(path) as target:
            artifact.save(str(target))
            model = onnx.load(str(target), load_external_data=False)
            _name_axes(model, SEQUENCE_AXIS_NAMES if len(graph.input.shape or ()) in (1, 2) else AXIS_NAMES)
            onnx.save(model, str(target))
            try:
                onnx.checker.check_model(str(target), full_check=True)
            except Exception as exc:
                raise ArchspecError("AS808", f"the exported ONNX model fails onnx.checker: {exc}") from None


def _name_axes(model: Any, axis_names: dict[int, str] = AXIS_NAMES) -> None:
    """torch.export's symbols (s77, s53) -> batch, height, width (or sequence), wherever they appear in the graph."""
    names: dict[str, str] = {}
    for axis, dim in enumerate(model.graph.input[0].type.tensor_type.shape.dim):
        if dim.dim_param and axis in axis_names:
            names[dim.dim_param] = axis_names[axis]
    if not names:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)
