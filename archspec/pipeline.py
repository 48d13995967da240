"""The whole flow on one screen: load -> validate -> lower -> passes -> backend.

    resolve_file   spec file -> typed, validated spec (+ the thin spec's variant and settings)
    lower          spec + parameter overrides -> IR graph with shapes
    count          IR -> parameters and MACs per layer
    check_expect   the spec's own expect: figures hold (only without overrides)
    footprint      parameters and memory within the limits, before anything is allocated
    optimize       (on request) IR -> IR inference rewrites, then count again
    dynamic_dims   the spec's dynamic: -> the input sizes every backend's artifact accepts
    coverage       IR -> per-layer report of what a backend compiles (archspec check; build refuses the rest)
    output_path    where the artifact goes: checked before the build starts
    backend        IR -> artifact (torch: nn.Module, saved as a torch.export .pt2; torch-source, onnx, aoti, ...)
    convert        (archspec convert-weights) a reference checkpoint -> the spec's tensor names, .safetensors

Nothing here imports torch: a backend is imported by the registry when it is used. A backend's own
failure (an exception that is not one of our errors) is reported as a bug in the package providing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import os
from pathlib import Path
import threading
from typing import Any

from archspec import extras
from archspec.backends import BuildOptions, DynamicDims, Range
from archspec.backends.artifacts import output_path
from archspec.backends.coverage import LayerSupport, from_supports
from archspec.errors import ArchspecError, SpecError, SpecErrors
from archspec.ir import Graph
from archspec.limits import DEFAULT, Limits
from archspec.lower import fmt_shape, lower
from archspec.params import COMMAND_LINE
from archspec.passes.counts import Costs, count
from archspec.passes.footprint import check_footprint
from archspec.passes.inference import Optimized, optimize as inference_plan
from archspec.registry import Registry, default_registry
from archspec.validate import Resolved, resolve_file

BUILD_BATCH = 2  # the batch a backend traces with (torch.export specialises 0 and 1)


@dataclass(frozen=True)
class Compiled:
    resolved: Resolved
    graph: Graph
    costs: Costs
    optimized: Optimized | None = None  # with optimize=True: graph and costs are the rewritten graph's


def compile_spec(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    variant: str | None = None,
    limits: Limits = DEFAULT,
    *,
    optimize: bool = False,
    expect: bool = True,
) -> Compiled:
    """Validate, lower and count a spec file (optionally one `variant` of its family's table);
    raise SpecErrors with every located problem. `optimize` applies the inference rewrites after the
    expect: check (which states the reference figures of the unrewritten network). `expect=False`
    leaves that check to the caller: archspec summary prints the table first, archspec card shows its result."""
    registry = registry or default_registry()
    resolved = resolve_file(path, registry, variant, limits)
    graph = lower(resolved, registry, overrides, COMMAND_LINE, limits)
    costs = count(graph, registry)
    if expect and not overrides:
        check_expect(resolved, costs)
    if optimize:
        plan = inference_plan(graph, registry)
        return Compiled(resolved, plan.graph, count(plan.graph, registry), plan)
    return Compiled(resolved, graph, costs)


def build_options(
    compiled: Compiled,
    seed: int,
    weights: str | os.PathLike[str] | None,
    channels_last: bool | None = None,
    save_weights: bool = False,
    settings: Mapping[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> BuildOptions:
    """Backend options; channels_last defaults to the optimizer's choice (off without optimize)."""
    plan = compiled.optimized
    if channels_last is None:
        channels_last = plan.channels_last if plan else False
    description = compiled.resolved.description
    return BuildOptions(
        seed=seed,
        weights=Path(weights) if weights else None,
        optimized=plan,
        channels_last=channels_last,
        dynamic=dynamic_dims(compiled),
        save_weights=save_weights,
        settings=dict(settings or {}),
        description=description,
        report=report,
    )


def check_expect(resolved: Resolved, costs: Costs) -> None:
    """Compare the spec's `expect:` figures with the computed ones; all differences in one error."""
    expect, doc = resolved.expect, resolved.expect_doc
    if expect is None or doc is None:
        return
    checks = [
        ("params", "AS601", expect.params, costs.params, lambda v: f"{v:,}"),
        ("macs", "AS602", expect.macs, costs.macs, lambda v: f"{v:,}"),
        ("output", "AS603", expect.output, list(costs.output), fmt_shape),
        ("outputs", "AS603", expect.outputs, [list(s) for s in costs.outputs], lambda v: " ".join(map(fmt_shape, v))),
        ("input", "AS604", expect.input, list(costs.input), fmt_shape),
    ]
    errors = []
    for key, code, wanted, got, show in checks:
        if wanted is not None and wanted != got:
            path = ("expect", key)
            errors.append(
                SpecError(
                    code,
                    f"expect: {key} is {show(wanted)} but the spec builds {show(got)}; "
                    "fix the layers (or the figure, if it was wrong)",
                    doc.locate(path),
                    path,
                )
            )
    if errors:
        raise SpecErrors(errors)


def check_compiled_expect(compiled: Compiled, overrides: Mapping[str, Any] | None, registry: Registry) -> None:
    """check_expect for a spec compiled with expect=False (against the unrewritten graph's figures)."""
    if overrides:
        return
    plan = compiled.optimized
    check_expect(compiled.resolved, compiled.costs if plan is None else count(plan.source, registry))


MAX_SEED = 2**64 - 1


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ArchspecError("AS806", f"seed {seed!r}: give a whole number from 0 to 2**64-1")
    return seed


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
    return DynamicDims(
        span(declared.batch, 32),
        span(declared.resolution, side) if declared.resolution is not None else None,
        compiled.resolved.doc.locate(("dynamic",)),
        span(declared.sequence, shape[0]) if declared.sequence is not None else None,
        declared.multiple,
    )


def coverage(compiled: Compiled, backend: str = "torch", registry: Registry | None = None) -> list[LayerSupport]:
    """Per layer: does `backend` compile it natively, by a fallback, or not at all (archspec check)."""
    target = (registry or default_registry()).backend(backend)
    report = getattr(target, "coverage", None)
    if report is not None:
        return list(report(compiled.graph))
    return from_supports(compiled.graph, target.supports, backend)


def build(
    path: str | os.PathLike[str],
    *,
    backend: str = "torch",
    seed: int = 0,
    weights: str | os.PathLike[str] | None = None,
    variant: str | None = None,
    registry: Registry | None = None,
    limits: Limits = DEFAULT,
    optimize: bool = False,
    channels_last: bool | None = None,
    **overrides: Any,
) -> Any:
    """Compile a spec and return the backend's in-memory artifact (torch: an nn.Module in train mode;
    with `optimize`, an inference module in eval mode, in channels_last where that pays)."""
    registry = registry or default_registry()
    check_seed(seed)
    compiled = _compiled_for_build(path, overrides, registry, variant, limits, optimize)
    check_footprint(compiled.graph, compiled.costs, limits, BUILD_BATCH)
    target = registry.backend(backend)
    options = build_options(compiled, seed, weights, channels_last)
    return _guarded(registry, backend, "build", lambda: target.build(compiled.graph, options))


# Specs compiled by `build`, so that building the same unchanged spec again (a notebook, a sweep over
# seeds, a test suite) costs the module and not also the load, validation and lowering. An entry is used
# only if every file the compile read still holds the same bytes (read again and compared: cheap next to
# parsing), with the same registry object, arguments and working folder. The compiled spec never leaves
# `build`: callers of compile_spec get their own, so nothing outside can change a remembered one.
_BUILD_CACHE: dict[tuple[Any, ...], tuple[Registry, tuple[tuple[str, bytes], ...], Compiled]] = {}
_BUILD_CACHE_ENTRIES = 8
_BUILD_CACHE_LOCK = threading.Lock()


def _compiled_for_build(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any],
    registry: Registry,
    variant: str | None,
    limits: Limits,
    optimize: bool,
) -> Compiled:
    try:
        key: tuple[Any, ...] | None = (
            os.fspath(path),
            os.getcwd(),
            variant,
            limits,
            id(registry),
            optimize,
            _frozen(overrides),
        )
        hash(key)
    except (TypeError, OSError):  # an override value that cannot be a key; no working folder
        key = None
    entry = _BUILD_CACHE.get(key) if key is not None else None
    if entry is not None and entry[0] is registry and all(_read(file) == data for file, data in entry[1]):
        return entry[2]
    before = _read(os.fspath(path)) if key is not None else None
    compiled = compile_spec(path, overrides, registry, variant, limits, optimize=optimize)
    files = _files_read(compiled.resolved)
    if key is not None and files is not None:
        contents = tuple((file, _read(file)) for file in files)
        # Not remembered if the spec changed while it compiled (an editor saving it): which bytes compiled is unknown.
        if all(data is not None for _, data in contents) and dict(contents).get(os.fspath(path)) == before:
            with _BUILD_CACHE_LOCK:  # builds in several threads
                while len(_BUILD_CACHE) >= _BUILD_CACHE_ENTRIES:
                    _BUILD_CACHE.pop(next(iter(_BUILD_CACHE)), None)
                _BUILD_CACHE[key] = (registry, contents, compiled)  # type: ignore[assignment]
    return compiled


def _frozen(value: Any) -> Any:
    """A hashable copy of override values (lists as tuples, dicts as sorted pairs), types kept apart."""
    if isinstance(value, Mapping):
        return (dict, tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_frozen(v) for v in value))
    return (type(value), value)


def _files_read(resolved: Resolved) -> list[str] | None:
    """Every file compiling `resolved` read, or None where that cannot be told from it (a `use:` chain
    through more than one thin spec: the middle ones leave no trace)."""
    docs = [resolved.doc, *resolved.doc.imported.values()]
    thin = resolved.thin_doc
    if thin is not None:
        use = thin.data.get("use") if isinstance(thin.data, dict) else None
        if not isinstance(use, str) or (Path(thin.file).parent / use).resolve() != Path(resolved.doc.file).resolve():
            return None
        docs.append(thin)
    if resolved.expect_doc is not None:
        docs.append(resolved.expect_doc)
    return sorted({doc.file for doc in docs})


def _read(file: str) -> bytes | None:
    try:
        with open(file, "rb") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def build_file(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    backend: str = "torch",
    seed: int = 0,
    weights: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    variant: str | None = None,
    registry: Registry | None = None,
    limits: Limits = DEFAULT,
    optimize: bool = False,
    save_weights: bool = False,
    settings: Mapping[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Compile a spec and write the backend's artifact; nothing is left behind on failure."""
    registry = registry or default_registry()
    check_seed(seed)
    compiled = compile_spec(path, overrides, registry, variant, limits, optimize=optimize)
    check_footprint(compiled.graph, compiled.costs, limits, BUILD_BATCH)
    target = registry.backend(backend)
    out = output_path(output, compiled.graph.name, target.suffix)  # refused before the (long) build, not after
    # Saved weights keep the default memory format (torch.export warns on NHWC tensors); whoever loads
    # the artifact picks the format for their device.
    options = build_options(
        compiled, seed, weights, channels_last=False, save_weights=save_weights, settings=settings, report=report
    )
    artifact = _guarded(registry, backend, "build", lambda: target.build(compiled.graph, options))
    try:
        _guarded(registry, backend, "save", lambda: target.save(artifact, compiled.graph, out, options))
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def convert_weights(
    path: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    variant: str | None = None,
    registry: Registry | None = None,
    limits: Limits = DEFAULT,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Pair a reference checkpoint with the spec's tensors (as --weights does) and write them under the
    spec's names as .safetensors (default `<name>.safetensors`), for fine-tuning from the reference."""
    registry = registry or default_registry()
    compiled = compile_spec(path, overrides, registry, variant, limits)
    check_footprint(compiled.graph, compiled.costs, limits, BUILD_BATCH)
    out = output_path(output, compiled.graph.name, ".safetensors")
    target = registry.backend("torch")
    convert = getattr(target, "convert_weights", None)
    if convert is None:
        raise ArchspecError("AS803", "the torch backend installed here cannot convert weights")
    options = build_options(compiled, 0, weights, report=report)
    try:
        _guarded(registry, "torch", "convert-weights", lambda: convert(compiled.graph, options, out))
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _guarded(registry: Registry, backend: str, step: str, call: Any) -> Any:
    """Run a backend step; an exception that is not our own error is the backend package's bug."""
    try:
        return call()
    except (ArchspecError, SpecErrors, OSError):
        raise
    except ModuleNotFoundError as exc:  # an optional package (torch, onnx) is not installed: not a bug
        raise extras.missing(exc, f"the {backend} backend") from None
    except MemoryError:
        raise ArchspecError(
            "AS503", f"the {backend} backend ran out of memory in {step}; lower the input size or widths"
        ) from None
    except Exception as exc:
        provider = registry.backends[backend].provider if backend in registry.backends else backend
        raise ArchspecError(
            "AS805",
            f"the {backend} backend failed in {step}: {type(exc).__name__}: {exc}. "
            f"This is a bug in {provider}; report it there",
        ) from None
