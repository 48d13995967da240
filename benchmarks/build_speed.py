"""Time of `archspec.build(spec)` against the reference constructor it reproduces, in one process.

    python -m benchmarks.build_speed [--models resnet50,swin_t] [--repeats 7] [--check] [--profile swin_t]

Ours is `archspec.build(specs/<model>.yaml)` (compile the spec, make the torch module, initialise it);
the reference is the constructor the fidelity tests compare with (torchvision, timm for mixer_b16), both
with random initialisation. One thread, imports and first builds done before timing, runs interleaved
(ours, reference, ours, ...), timed in CPU seconds of the process (see `timed`); the medians and their
ratio (ours / reference) are printed per model: "ours" builds the same spec again in one process, as a
notebook or a sweep does (build reuses the compiled spec and its generated code), "first build" drops
those first, as a process's first build of a spec. With --check the exit status is 1 when any ratio of the
first kind is above --limit (default 1.0). --profile MODEL prints cProfile's top functions of one build of ours instead.
Not a test: timings on shared machines vary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import cProfile
import gc
from pathlib import Path
import pstats
import statistics
import sys
import time

import torch
import torchvision

import archspec
from archspec import pipeline
from archspec.backends.torch import codegen

ROOT = Path(__file__).resolve().parents[1]


def _timm(name: str) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return make


# As tests/test_fidelity_*.py build each reference.
REFERENCES: dict[str, Callable[[], torch.nn.Module]] = {
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(weights=None),
    "densenet121": lambda: torchvision.models.densenet121(weights=None),
    "swin_t": lambda: torchvision.models.swin_t(weights=None),
    "mixer_b16": _timm("mixer_b16_224"),
    "vit_b_16": lambda: torchvision.models.vit_b_16(weights=None),
}


def ours(name: str, first: bool = False) -> Callable[[], torch.nn.Module]:
    """archspec.build of the model's spec; with `first`, as a process's first build of it: the compiled
    spec and generated forward code that build keeps for the next build of an unchanged spec are dropped."""
    spec = ROOT / "specs" / f"{name}.yaml"
    if not first:
        return lambda: archspec.build(spec)

    def build() -> torch.nn.Module:
        pipeline._BUILD_CACHE.clear()
        codegen._CODE.clear()
        return archspec.build(spec)

    return build


def timed(make: Callable[[], torch.nn.Module]) -> float:
    """CPU seconds of this process to construct, and to drop, one module (a reference cycle moves cost
    into the collector). CPU time, not wall time: on a shared machine the other processes' load then
    slows both sides alike instead of whichever happened to run at a busy moment."""
    start = time.process_time()
    module = make()
    del module
    return time.process_time() - start


def compare(name: str, repeats: int) -> tuple[float, float, float]:
    """Medians of ours building the spec again (the issue's figure), of the reference, and of ours as a first build."""
    mine, theirs, fresh = ours(name), REFERENCES[name], ours(name, first=True)
    timed(mine), timed(theirs)  # warm: lazy imports, caches every build may use
    a: list[float] = []
    b: list[float] = []
    c: list[float] = []
    gc.collect()
    # No collection between runs: a module that only the cyclic collector frees is paid for where
    # collections happen to run, as in a user's process, instead of in an untimed gc.collect().
    for _ in range(repeats):
        a.append(timed(mine))
        b.append(timed(theirs))
        c.append(timed(fresh))
    return statistics.median(a), statistics.median(b), statistics.median(c)


def profile(name: str, top: int) -> None:
    make = ours(name)
    timed(make)
    profiler = cProfile.Profile()
    profiler.enable()
    timed(make)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(REFERENCES), help="comma-separated, of: " + ", ".join(REFERENCES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio is above --limit")
    parser.add_argument("--limit", type=float, default=1.0)
    parser.add_argument("--profile", metavar="MODEL", help="profile one build of MODEL instead of timing")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.profile:
        profile(args.profile, args.top)
        return 0
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(REFERENCES)}")
    print(
        f"{'model':<16} {'ours s':>8} {'reference s':>12} {'ratio':>6} {'first build s':>14} {'ratio':>6}"
        f"   (CPU s, median of {args.repeats}, one thread)"
    )
    worst = 0.0
    for name in names:
        a, b, c = compare(name, args.repeats)
        worst = max(worst, a / b)
        print(f"{name:<16} {a:8.3f} {b:12.3f} {a / b:6.2f} {c:14.3f} {c / b:6.2f}", flush=True)
    if args.check and worst > args.limit:
        print(f"FAIL: a ratio is above {args.limit}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
