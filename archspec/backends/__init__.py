"""Backends: IR graph -> artifact. Each backend is a plugin; this module only declares the interface.

Nothing here imports a backend's libraries: the registry imports a backend when it is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from archspec.ir import Graph
from archspec.passes.inference import Optimized


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    weights: Path | None = None  # a reference state dict to start from
    # With `optimized`, the graph to build is `optimized.graph`: build `optimized.source` (the weights
    # belong to it), then transform its weights by `optimized.folds`. The result is for inference.
    optimized: Optimized | None = None
    channels_last: bool = False  # NHWC memory format for 4-D weights, where the backend has one


class Backend(Protocol):
    """What a backend plugin provides. `extra_lowerings` come from other plugins' `lowerings`."""

    name: str
    suffix: str  # the default file suffix of `save`, e.g. ".pt2"

    def __init__(self, *, extra_lowerings: Mapping[str, Callable[..., Any]]) -> None: ...

    def supports(self, op: str) -> bool:
        """Whether this backend (with the lowerings handed to it) can lower `op`."""
        ...

    def unsupported(self, graph: Graph) -> list[str]:
        """Names of the ops in `graph` this backend cannot lower."""
        ...

    def build(self, graph: Graph, options: BuildOptions) -> Any:
        """The in-memory artifact (for torch: an nn.Module)."""
        ...

    def save(self, artifact: Any, graph: Graph, path: Path) -> None:
        """Write the artifact to `path` completely or not at all."""
        ...
