"""archspec: a plugin-based compiler for declarative neural-network architecture specs.

    import archspec
    model = archspec.build("specs/vgg16.yaml", num_classes=10)    # an nn.Module, ready to train
    costs = archspec.summary("specs/resnet50.yaml")                # params, MACs, shapes per layer

Importing archspec does not import torch; `build` imports the backend it uses (on an install without torch,
it raises ArchspecError AS810 naming the extra to install: pip install "archspec[torch]").
"""

from __future__ import annotations

import os
from typing import Any

from archspec.errors import ArchspecError, Location, SpecError, SpecErrors
from archspec.passes.counts import Costs
from archspec.pipeline import Compiled, build, build_file, compile_spec

__all__ = [
    "ArchspecError",
    "Compiled",
    "Costs",
    "Location",
    "SpecError",
    "SpecErrors",
    "build",
    "build_file",
    "compile_spec",
    "summary",
]
__version__ = "0.1.0"


def summary(
    path: str | os.PathLike[str], *, variant: str | None = None, optimize: bool = False, **overrides: Any
) -> Costs:
    """Output shapes, parameter and MAC counts of a spec, computed statically (with `optimize`: of the
    inference-rewritten graph, which `build(..., optimize=True)` builds)."""
    return compile_spec(path, overrides, variant=variant, optimize=optimize).costs
