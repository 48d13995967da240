"""The aoti backend object the registry instantiates.

Setting: `--option device=cpu|cuda` (default: cuda where a GPU is present, else cpu). A CUDA package runs
only on CUDA. Compiling is the slow step (minutes for a ResNet-50 on a few CPU cores); it happens in
`save`, inside the private staging folder, so a failed or interrupted compile leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions
from archspec.backends.aoti.coverage import COVERAGE
from archspec.backends.coverage import TableBackend, refuse_unsupported
from archspec.errors import ArchspecError
from archspec.ir import Graph

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Exported:
    program: Any  # torch.export.ExportedProgram, on `device`
    device: str


def device_setting(settings: Mapping[str, str], cuda_available: bool) -> str:
    unknown = sorted(set(settings) - {"device"})
    if unknown:
        raise ArchspecError("AS809", f"the aoti backend has no setting(s) {unknown}; it takes device=cpu|cuda")
    device = settings.get("device", "cuda" if cuda_available else "cpu")
    if device not in DEVICES:
        raise ArchspecError("AS809", f"aoti: device={device!r}; use cpu or cuda")
    if device == "cuda" and not cuda_available:
        raise ArchspecError(
            "AS810", "aoti: device=cuda needs a CUDA GPU and a CUDA build of torch; none is available here"
        )
    return device


class AotiBackend(TableBackend):
    name = "aoti"
    suffix = ".aoti.pt2"

    COVERAGE = COVERAGE
    PLUGIN_NOTE = "a plugin op, compiled through its torch lowering"

    def build(self, graph: Graph, options: BuildOptions) -> Exported:
        import torch

        from archspec.backends.export import export_program
        from archspec.backends.torch.backend import TorchBackend

        device = device_setting(options.settings, torch.cuda.is_available())
        refuse_unsupported(self.coverage(graph), self.name)
        module = TorchBackend(extra_lowerings=self.extra).build(graph, options).to(device)
        with torch.device(device):
            return Exported(export_program(module, graph, options.dynamic), device)

    def save(self, artifact: Exported, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        import torch._inductor

        from archspec.backends.artifacts import staged

        if not path.name.endswith(".pt2"):
            raise ArchspecError("AS804", f"an AOTInductor package must be named *.pt2; got {path.name}")
        with staged(path) as target:
            try:
                torch._inductor.aoti_compile_and_package(artifact.program, package_path=str(target))
            except Exception as exc:
                lines = str(exc).strip().splitlines() or [""]
                raise ArchspecError(
                    "AS808",
                    f"AOTInductor could not compile {graph.name!r} for {artifact.device}: "
                    f"{type(exc).__name__}: {lines[0]}",
                ) from None
