"""The benchmark itself: check options, build ours (and the reference, with the same weights), place
both, warm up, time interleaved, summarise."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
import os
from pathlib import Path
import tempfile
from typing import Any

import torch
from torch import nn

from archspec import pipeline
from archspec.bench import DTYPES, BenchOptions, BenchReport
from archspec.bench.reference import build_reference, reference_name
from archspec.bench.runners import TORCH_DTYPES, ModuleRunner, Runner, runner_factory
from archspec.bench.timing import summarize, time_interleaved
from archspec.errors import ArchspecError
from archspec.ir import numel
from archspec.passes.footprint import gigabytes
from archspec.registry import Registry, default_registry


def run(
    path: str | os.PathLike[str],
    options: BenchOptions,
    overrides: Mapping[str, Any],
    variant: str | None,
    registry: Registry | None,
) -> BenchReport:
    registry = registry or default_registry()
    _check(options)
    device = _device(options.device)
    factory = runner_factory(options.backend, registry)
    compiled = pipeline.compile_spec(path, overrides, registry, variant, optimize=options.optimize)
    name = compiled.graph.name
    _check_memory(compiled, options, device)
    if options.vs:
        reference_name(options.vs, name)  # fail before building anything
    with _settings(options, device):
        runners: list[Runner] = []
        reference: nn.Module | None = None
        with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder:
            weights = None
            if options.vs:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(options.seed)
                    reference = build_reference(options.vs, name, overrides)
                weights = Path(folder) / "reference.pt"
                torch.save(reference.state_dict(), weights)
            # channels_last: the flag forces it; without it an optimized build takes the plan's choice
            build = pipeline.build_options(compiled, options.seed, weights, True if options.channels_last else None)
            runners.append(factory(compiled, build, options, registry))
        if options.vs and reference is not None:
            runners.append(ModuleRunner(reference_name(options.vs, name), reference, options, device))
        x, y = _inputs(compiled, options, device)
        try:
            error = _output_error(runners, x, y) if len(runners) > 1 and not options.train else None
            samples = time_interleaved([_bind(r, x, y) for r in runners], device, options.warmup, options.iters)
        except torch.cuda.OutOfMemoryError:
            raise ArchspecError(
                "AS901", f"out of memory on {device} at batch {options.batch}; use a smaller --batch"
            ) from None
        except Exception as exc:  # a failing step (shapes, a compiler error) is reported, not dumped
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ArchspecError("AS901", f"the benchmark step failed: {type(exc).__name__}: {first}") from None
        threads = torch.get_num_threads()
    stats = [summarize(r.label, s, options.batch) for r, s in zip(runners, samples)]
    return BenchReport(
        name,
        options,
        _device_name(device),
        threads,
        torch.__version__,
        compiled.costs.macs,
        stats[0],
        stats[1] if len(stats) > 1 else None,
        error,
    )


def _check(options: BenchOptions) -> None:
    if options.dtype not in DTYPES:
        raise ArchspecError("AS901", f"unknown dtype {options.dtype!r}; use one of {', '.join(DTYPES)}")
    if options.train and options.optimize:
        raise ArchspecError(
            "AS901", "--optimize builds an inference module (batch norm folded); drop --train or --optimize"
        )
    if (
        options.batch < 1
        or options.iters < 1
        or options.warmup < 0
        or (options.threads is not None and options.threads < 1)
    ):
        raise ArchspecError("AS901", "--batch, --iters and --threads must be at least 1, --warmup at least 0")


def _check_memory(compiled: pipeline.Compiled, options: BenchOptions, device: torch.device) -> None:
    """Refuse a --batch whose tensors cannot fit the device before allocating them: a batch of 10^11 asked
    the allocator for petabytes (a traceback), and one just above the RAM would swap the machine to a halt.
    What a step needs at least: the parameters, the input, and the largest output (training keeps them all)."""
    shapes = [node.shape or () for node in compiled.graph]
    per_sample = (
        sum(map(numel, shapes))
        if options.train
        else numel(compiled.graph.input.shape or ()) + max(map(numel, shapes), default=0)
    )
    need = (compiled.costs.params + options.batch * per_sample) * 4
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have:
        raise ArchspecError(
            "AS901",
            f"--batch {options.batch} needs at least {gigabytes(need)} on {device} (parameters, "
            f"input and {'every activation' if options.train else 'the largest activation'}); it has "
            f"{gigabytes(have)}: use a smaller --batch",
        )


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ArchspecError("AS901", f"unknown device {text!r}; use cpu or cuda (cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArchspecError("AS901", f"no CUDA device: torch {torch.__version__} sees none; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ArchspecError("AS901", f"no CUDA device {device.index}: {torch.cuda.device_count()} visible")
    elif device.type != "cpu":
        raise ArchspecError("AS901", f"device {text!r} is not supported by the benchmark; use cpu or cuda")
    return device


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{os.cpu_count()}-core CPU"


@contextlib.contextmanager
def _settings(options: BenchOptions, device: torch.device) -> Iterator[None]:
    """Threads and cudnn autotuning for the benchmark, restored afterwards (bench may run in-process)."""
    threads, autotune = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        torch.backends.cudnn.benchmark = device.type == "cuda"
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = autotune


def _inputs(
    compiled: pipeline.Compiled, options: BenchOptions, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch in the input shape (in the compute dtype for inference, fp32 under autocast for
    training; NHWC with channels_last) and labels over the output's classes."""
    generator = torch.Generator().manual_seed(options.seed)
    shape = (options.batch, *(compiled.graph.input.shape or ()))
    x = torch.randn(shape, generator=generator)
    if not options.train:
        x = x.to(TORCH_DTYPES[options.dtype])
    if options.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    classes = compiled.graph.output_shape[0] if len(compiled.graph.output_shape) == 1 else 1
    y = torch.randint(0, classes, (options.batch,), generator=generator)
    return x.to(device), y.to(device)


def _bind(runner: Runner, x: torch.Tensor, y: torch.Tensor) -> Any:
    return lambda: runner(x, y)


def _output_error(runners: list[Runner], x: torch.Tensor, y: torch.Tensor) -> float:
    """max |ours - reference| / max |reference| on the benchmark batch: evidence that both sides
    compute the same function with the same weights (about 1e-7 in fp32; bf16 rounds to about 1e-2)."""
    ours, reference = (r(x, y) for r in runners)
    assert isinstance(ours, torch.Tensor) and isinstance(reference, torch.Tensor)
    scale = reference.float().abs().max().clamp_min(1e-12)  # timm zero-initialises some heads
    return float((ours.float() - reference.float()).abs().max() / scale)
