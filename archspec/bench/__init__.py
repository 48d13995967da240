"""Benchmarks: time a built spec on a device, optionally against its reference implementation.

    (here)     BenchOptions (what `archspec bench` parses), Stats, BenchReport; torch-free
    run        the orchestration: build, place, warm up, time interleaved, report
    runners    backend name -> runner factory (today: torch, eager or torch.compile)
    timing     device-event timing (CUDA events on GPU, perf_counter on CPU), median and spread
    reference  spec name -> the torchvision / timm constructor of the same architecture

Importing this package does not import torch; `bench()` does (archspec.bench.run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from typing import Any

from archspec.registry import Registry

DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class BenchOptions:
    """One benchmark. Inference runs in eval mode under no_grad with the module and input cast to
    `dtype`; `train` times forward + backward + an SGD step in train mode, with fp32 weights and
    autocast to `dtype` (mixed precision). `vs` names a reference library (torchvision, timm) whose
    model of the same architecture gets the same weights and is timed interleaved with ours."""

    backend: str = "torch"
    device: str = "cpu"
    dtype: str = "fp32"
    batch: int = 8
    train: bool = False
    vs: str | None = None
    compile: bool = False  # torch.compile, default mode (both sides)
    channels_last: bool = False  # NHWC module and input (both sides)
    optimize: bool = False  # our inference passes (archspec build --optimize); not with train
    threads: int | None = None  # CPU threads (torch.set_num_threads); None: torch's default
    warmup: int = 3
    iters: int = 10
    seed: int = 0


@dataclass(frozen=True)
class Stats:
    """Step times in milliseconds over the timed iterations."""

    label: str
    samples_ms: tuple[float, ...]
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    images_per_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "median_ms": self.median_ms,
            "q1_ms": self.q1_ms,
            "q3_ms": self.q3_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "images_per_s": self.images_per_s,
            "samples_ms": list(self.samples_ms),
        }


@dataclass(frozen=True)
class BenchReport:
    spec: str
    options: BenchOptions
    device_name: str
    threads: int
    torch_version: str
    macs: int  # per sample, from archspec's counts of the graph that was built
    ours: Stats
    reference: Stats | None = None
    output_error: float | None = None  # inference with a reference: relative max difference of the outputs

    @property
    def ratio(self) -> float | None:
        """Our median step time over the reference's: below 1 is faster than the reference."""
        return self.ours.median_ms / self.reference.median_ms if self.reference else None

    def to_json(self) -> dict[str, object]:
        o = self.options
        return {
            "spec": self.spec,
            "backend": o.backend,
            "device": o.device,
            "device_name": self.device_name,
            "dtype": o.dtype,
            "batch": o.batch,
            "mode": "train" if o.train else "inference",
            "compile": o.compile,
            "channels_last": o.channels_last,
            "optimize": o.optimize,
            "threads": self.threads,
            "warmup": o.warmup,
            "iters": o.iters,
            "torch": self.torch_version,
            "macs": self.macs,
            "ours": self.ours.to_json(),
            "reference": self.reference.to_json() if self.reference else None,
            "ratio": self.ratio,
            "output_error": self.output_error,
        }

    def text(self) -> str:
        o = self.options
        where = (
            f"{o.device} ({self.device_name}, {self.threads} thread{'s' if self.threads != 1 else ''})"
            if o.device == "cpu"
            else f"{o.device} ({self.device_name})"
        )
        lines = [
            f"{self.spec}: {o.backend} backend{', compiled' if o.compile else ''}{', optimized' if o.optimize else ''}"
            f"{', channels_last' if o.channels_last else ''}, {where}, {o.dtype}, batch {o.batch}, "
            f"{'train step' if o.train else 'inference'}, {o.iters} iterations after {o.warmup} warm-up"
        ]
        rows = [self.ours] + ([self.reference] if self.reference else [])
        width = max(len(s.label) for s in rows)
        for s in rows:
            lines.append(
                f"  {s.label:<{width}}  {s.median_ms:9.2f} ms  (IQR {s.q1_ms:.2f}-{s.q3_ms:.2f}, "
                f"min {s.min_ms:.2f}, max {s.max_ms:.2f})  {s.images_per_s:10.1f} images/s"
            )
        if self.reference is not None and self.ratio is not None:
            lines.append(
                f"  ratio (time, ours / {self.reference.label}): {self.ratio:.2f}"
                + (f"; outputs agree to {self.output_error:.1e}" if self.output_error is not None else "")
            )
        return "\n".join(lines)


def bench(
    path: str | os.PathLike[str],
    options: BenchOptions,
    overrides: Mapping[str, Any] | None = None,
    variant: str | None = None,
    registry: Registry | None = None,
) -> BenchReport:
    """Build the spec with `options.backend` and time it (and its reference, with `options.vs`)."""
    from archspec.bench.run import run

    return run(path, options, overrides or {}, variant, registry)
