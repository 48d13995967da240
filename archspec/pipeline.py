"""The whole flow on one screen: load -> validate -> lower -> passes -> backend.

    resolve_file   spec file -> typed, validated spec (+ the thin spec's variant and settings)
    lower          spec + parameter overrides -> IR graph with shapes
    count          IR -> parameters and MACs per layer
    check_expect   the spec's own expect: figures hold (only without overrides)
    backend        IR -> artifact (torch: nn.Module, saved as a torch.export .pt2)

Nothing here imports torch: a backend is imported by the registry when it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

from archspec.backends import BuildOptions
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


def build(path: str | os.PathLike[str], *, backend: str = "torch", seed: int = 0,
          weights: str | os.PathLike[str] | None = None, variant: str | None = None,
          registry: Registry | None = None, **overrides: Any) -> Any:
    """Compile a spec and return the backend's in-memory artifact (torch: an nn.Module in train mode)."""
    registry = registry or default_registry()
    compiled = compile_spec(path, overrides, registry, variant)
    return registry.backend(backend).build(compiled.graph, BuildOptions(seed, Path(weights) if weights else None))


def build_file(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
               backend: str = "torch", seed: int = 0, weights: str | os.PathLike[str] | None = None,
               overrides: Mapping[str, Any] | None = None, variant: str | None = None,
               registry: Registry | None = None) -> Path:
    """Compile a spec and write the backend's artifact; nothing is left behind on failure."""
    registry = registry or default_registry()
    compiled = compile_spec(path, overrides, registry, variant)
    target = registry.backend(backend)
    artifact = target.build(compiled.graph, BuildOptions(seed, Path(weights) if weights else None))
    out = Path(output) if output else Path(compiled.graph.name + target.suffix)
    try:
        target.save(artifact, compiled.graph, out)
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {out}: {exc.strerror or exc}") from None
    return out
