"""Backends: IR graph -> artifact. Each backend is a plugin; this module only declares the interface.

Nothing here imports a backend's libraries: the registry imports a backend when it is first used.
What several backends share lives beside them, once: `coverage` (which layers a backend compiles, and the
located refusal of those it cannot) and `export` (torch.export with the spec's dynamic dimensions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from archspec.errors import Location
from archspec.ir import Graph
from archspec.passes.inference import Optimized


@dataclass(frozen=True)
class Range:
    """A run-time size: min <= opt <= max (opt is what TensorRT tunes for)."""

    min: int
    opt: int
    max: int

    @property
    def static(self) -> bool:
        return self.min == self.max


@dataclass(frozen=True)
class DynamicDims:
    """The input sizes an artifact accepts, from the spec's `dynamic:` (or this default batch range).
    `resolution` is the range of H and W of a [C, H, W] input, `sequence` of T of a [T] or [T, D] input;
    None keeps them at the spec's size."""

    batch: Range = Range(1, 32, 256)
    resolution: Range | None = None
    source: Location | None = None  # where the spec declares them, for errors
    sequence: Range | None = None
    multiple: int = 1  # the resolution's sides (or the sequence's length) are multiples of this


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    weights: Path | None = None  # a reference state dict to start from
    # With `optimized`, the graph to build is `optimized.graph`: build `optimized.source` (the weights
    # belong to it), then transform its weights by `optimized.folds`. The result is for inference.
    optimized: Optimized | None = None
    channels_last: bool = False  # NHWC memory format for 4-D weights, where the backend has one
    dynamic: DynamicDims = DynamicDims()
    save_weights: bool = False  # write the weights beside a source artifact (torch-source)
    settings: Mapping[str, str] = field(default_factory=dict)  # --option KEY=VALUE; each backend checks its own
    description: str = ""  # the spec's description, for artifacts that carry documentation
    report: Callable[[str], None] | None = None  # where a backend says what it did (how --weights paired)


class Backend(Protocol):
    """What a backend plugin provides. `extra_lowerings` come from other plugins' `lowerings`.

    A backend may also provide `coverage(graph) -> list[archspec.backends.coverage.LayerSupport]`, the
    per-layer report of `archspec check`; without it the report follows `supports`.
    """

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

    def save(self, artifact: Any, graph: Graph, path: Path, options: BuildOptions = BuildOptions()) -> None:
        """Write the artifact to `path` completely or not at all."""
        ...
