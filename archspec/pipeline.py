"""The whole flow on one screen: load -> validate -> lower -> passes -> backend.

    resolve_file   spec file -> typed, validated spec (+ the thin spec's variant and settings)
    lower          spec + parameter overrides -> IR graph with shapes
    count          IR -> parameters and MACs per layer
    check_expect   the spec's own expect: figures hold (only without overrides)
    dynamic_dims   the spec's dynamic: -> the input sizes every backend's artifact accepts
    coverage       IR -> per-layer report of what a backend compiles (archspec check; build refuses the rest)
    backend        IR -> artifact (torch: nn.Module, saved as a torch.export .pt2; torch-source, onnx, aoti, ...)

Nothing here imports torch: a backend is imported by the registry when it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions, DynamicDims, Range
from archspec.backends.coverage import LayerSupport, from_supports
from archspec.errors import ArchspecError, SpecError, SpecErrors
from archspec.ir import Graph
from archspec.lower import fmt_shape, lower
from archspec.passes.counts import Costs, count
from archspec.registry import Registry, default_registry
from archspec.validate import Resolved, resolve_file


@dataclass(frozen=True)
class Compiled:
    resolved: Resolved
    graph: Graph
    costs: Costs


def compile_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None,
                 registry: Registry | None = None, variant: str | None = None) -> Compiled:
    """Validate, lower and count a spec file (optionally one `variant` of its family's table);
    raise SpecErrors with every located problem."""
    registry = registry or default_registry()
    resolved = resolve_file(path, registry, variant)
    graph = lower(resolved, registry, overrides)
    costs = count(graph, registry)
    if not overrides:
        check_expect(resolved, costs)
    return Compiled(resolved, graph, costs)


def check_expect(resolved: Resolved, costs: Costs) -> None:
    """Compare the spec's `expect:` figures with the computed ones; all differences in one error."""
    expect, doc = resolved.expect, resolved.expect_doc
    if expect is None or doc is None:
        return
    checks = [
        ("params", "AS601", expect.params, costs.params, lambda v: f"{v:,}"),
        ("macs", "AS602", expect.macs, costs.macs, lambda v: f"{v:,}"),
        ("output", "AS603", expect.output, list(costs.output), fmt_shape),
        ("input", "AS604", expect.input, list(costs.input), fmt_shape),
    ]
    errors = []
    for key, code, wanted, got, show in checks:
        if wanted is not None and wanted != got:
            path = ("expect", key)
            errors.append(SpecError(code, f"expect: {key} is {show(wanted)} but the spec builds {show(got)}; "
                                    "fix the layers (or the figure, if it was wrong)", doc.locate(path), path))
    if errors:
        raise SpecErrors(errors)


def dynamic_dims(compiled: Compiled) -> DynamicDims:
    """The spec's `dynamic:` ranges (batch default [1, 256]); opt is the spec's own size for the
    resolution and the batch nearest 32 for the batch."""
    declared = compiled.resolved.spec.dynamic
    if declared is None:
        return DynamicDims()
    shape = compiled.graph.input.shape or ()

    def span(values: list[int], usual: int) -> Range:
        lo, hi = values[0], values[-1]
        return Range(lo, values[1] if len(values) == 3 else min(max(usual, lo), hi), hi)

    side = shape[1] if len(shape) == 3 else 0
    return DynamicDims(span(declared.batch, 32),
                       span(declared.resolution, side) if declared.resolution is not None else None,
                       compiled.resolved.doc.locate(("dynamic",)))


def options(compiled: Compiled, seed: int = 0, weights: str | os.PathLike[str] | None = None,
            save_weights: bool = False, settings: Mapping[str, str] | None = None) -> BuildOptions:
    spec = compiled.resolved
    description = (spec.ref.description if spec.ref is not None and spec.ref.description else spec.spec.description)
    return BuildOptions(seed, Path(weights) if weights else None, dynamic_dims(compiled), save_weights,
                        dict(settings or {}), description)


def coverage(compiled: Compiled, backend: str = "torch", registry: Registry | None = None) -> list[LayerSupport]:
    """Per layer: does `backend` compile it natively, by a fallback, or not at all (archspec check)."""
    target = (registry or default_registry()).backend(backend)
    report = getattr(target, "coverage", None)
    if report is not None:
        return list(report(compiled.graph))
    return from_supports(compiled.graph, target.supports, backend)


def build(path: str | os.PathLike[str], *, backend: str = "torch", seed: int = 0,
          weights: str | os.PathLike[str] | None = None, variant: str | None = None,
          registry: Registry | None = None, **overrides: Any) -> Any:
    """Compile a spec and return the backend's in-memory artifact (torch: an nn.Module in train mode)."""
    registry = registry or default_registry()
    compiled = compile_spec(path, overrides, registry, variant)
    return registry.backend(backend).build(compiled.graph, options(compiled, seed, weights))


def build_file(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
               backend: str = "torch", seed: int = 0, weights: str | os.PathLike[str] | None = None,
               overrides: Mapping[str, Any] | None = None, variant: str | None = None,
               registry: Registry | None = None, save_weights: bool = False,
               settings: Mapping[str, str] | None = None) -> Path:
    """Compile a spec and write the backend's artifact; nothing is left behind on failure."""
    registry = registry or default_registry()
    compiled = compile_spec(path, overrides, registry, variant)
    target = registry.backend(backend)
    chosen = options(compiled, seed, weights, save_weights, settings)
    artifact = target.build(compiled.graph, chosen)
    out = Path(output) if output else Path(compiled.graph.name + target.suffix)
    try:
        target.save(artifact, compiled.graph, out, chosen)
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {out}: {exc.strerror or exc}") from None
    return out
