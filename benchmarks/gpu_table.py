"""The GPU table: archspec against torchvision/timm, eager and torch.compile, inference and training.

    python benchmarks/gpu_table.py                       # all models, on cuda, within ~9 minutes
    python benchmarks/gpu_table.py --models resnet50 vit_b_16 --modes inference
    python benchmarks/gpu_table.py --device cpu --batch 2 --models resnet50 --iters 2   # smoke check

Per model and mode, two `archspec bench --vs` runs (archspec.bench): eager (ours vs reference) and
compiled (both under torch.compile, default mode), each interleaved, same weights, bf16, channels_last.
Inference casts module and input to bf16; training uses fp32 weights, bf16 autocast and SGD. Batch 256
(vgg16: 128) unless --batch. MFU counts 2 FLOPs per MAC from archspec's counts (training: 3x the
forward) against --peak-tflops (790: dense bf16 on the GPU this table was planned for).

All eager runs come first, then the compiled ones (compilation dominates their time); no run starts
after --deadline-s (480), no compiled run within 150 s of it, and their cells read 'skipped', so one call
stays under 10 minutes. Each run's figures go to stderr as it finishes; the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
import sys
import time

import torch

from archspec.bench import BenchOptions, BenchReport, bench
from archspec.errors import ArchspecError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["resnet50", "efficientnet_b0", "vit_b_16", "densenet121", "vgg16", "mixer_b16"]
LIBRARY = {"mixer_b16": "timm"}  # everything else: torchvision
BATCH = {"vgg16": 128}
MODES = ["inference", "train"]
COMPILE_RESERVE_S = 150  # do not start a compiled run with less time than this left (two compiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, metavar="MODEL")
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, help="batch for every model (default: 256, vgg16 128)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="eager columns only")
    parser.add_argument("--deadline-s", type=float, default=480, help="start no run after this many seconds")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    args = parser.parse_args()
    args.dtype = args.dtype or ("fp32" if args.device == "cpu" else "bf16")  # CPUs without bf16 units crawl

    start = time.monotonic()
    results: dict[tuple[str, str, bool], BenchReport | str] = {}
    plan = [
        (model, mode, compiled)
        for compiled in ([False] if args.no_compile else [False, True])
        for mode in args.modes
        for model in args.models
    ]
    for model, mode, compiled in plan:
        left = args.deadline_s - (time.monotonic() - start)
        if left <= 0 or (compiled and left < COMPILE_RESERVE_S):
            results[(model, mode, compiled)] = "skipped"
            continue
        options = BenchOptions(
            device=args.device,
            dtype=args.dtype,
            batch=args.batch or BATCH.get(model, 256),
            train=mode == "train",
            vs=LIBRARY.get(model, "torchvision"),
            compile=compiled,
            channels_last=True,
            warmup=args.warmup,
            iters=args.iters,
        )
        began = time.monotonic()
        try:
            results[(model, mode, compiled)] = bench(ROOT / "specs" / f"{model}.yaml", options)
        except ArchspecError as exc:
            results[(model, mode, compiled)] = f"error: {exc.message}"
            print(f"{model} {mode}{' compiled' if compiled else ''}: {exc}", file=sys.stderr)
        result = results[(model, mode, compiled)]
        # one line per run as it finishes, so that a run cut short still leaves its figures behind
        figures = (
            f"ours {_speed(result)} images/s, reference {_speed(result, reference=True)}, ratio {_ratio(result)}"
            if isinstance(result, BenchReport)
            else result
        )
        print(
            f"[{time.monotonic() - start:6.0f}s] {model} {mode}{' compiled' if compiled else ''}: {figures} "
            f"({time.monotonic() - began:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        _release()
    print(table(results, args))
    return 0


def _release() -> None:
    """Free the previous run's models and compiled graphs before the next one."""
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def table(results: dict[tuple[str, str, bool], BenchReport | str], args: argparse.Namespace) -> str:
    any_report = next((r for r in results.values() if isinstance(r, BenchReport)), None)
    where = f"{any_report.device_name}, torch {any_report.torch_version}" if any_report else args.device
    lines = [
        f"{where}; {args.dtype}, channels_last; images/s (median of {args.iters}); "
        f"ratio = time ours / reference (below 1: faster); MFU vs {args.peak_tflops:g} TFLOP/s",
        "",
        "| model | mode | batch | reference eager | reference compiled | ours eager | ours compiled "
        "| ratio eager | ratio compiled | MFU ours eager | MFU ours compiled |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in args.models:
        for mode in args.modes:
            eager, compiled = results.get((model, mode, False), "-"), results.get((model, mode, True), "-")
            batch = next((r.options.batch for r in (eager, compiled) if isinstance(r, BenchReport)), "")
            cells = [
                _speed(eager, reference=True),
                _speed(compiled, reference=True),
                _speed(eager),
                _speed(compiled),
                _ratio(eager),
                _ratio(compiled),
                _mfu(eager, args.peak_tflops),
                _mfu(compiled, args.peak_tflops),
            ]
            lines.append(f"| {model} | {mode} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speed(result: BenchReport | str, reference: bool = False) -> str:
    if not isinstance(result, BenchReport):
        return result
    stats = result.reference if reference else result.ours
    if not stats:
        return "-"
    return f"{stats.images_per_s:,.0f}" if stats.images_per_s >= 100 else f"{stats.images_per_s:.3g}"


def _ratio(result: BenchReport | str) -> str:
    return f"{result.ratio:.2f}" if isinstance(result, BenchReport) and result.ratio else "-"


def _mfu(result: BenchReport | str, peak_tflops: float) -> str:
    if not isinstance(result, BenchReport):
        return "-"
    flops_per_image = 2 * result.macs * (3 if result.options.train else 1)
    mfu = 100 * flops_per_image * result.ours.images_per_s / (peak_tflops * 1e12)
    return f"{mfu:.1f}%" if mfu >= 0.1 else f"{mfu:.2g}%"


if __name__ == "__main__":
    sys.exit(main())
