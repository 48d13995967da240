"""Forward-pass speed of archspec-built modules against the reference implementations, same run.

    python benchmarks/forward_vs_reference.py [--batch 4] [--repeats 5] [--threads N] [--device cpu|cuda] [models...]

A table over several zoo models of `archspec bench SPEC --vs torchvision|timm` (archspec.bench): both
sides get identical weights, run in eval mode under no_grad, interleaved so that machine noise hits
both; the ratio is ours / reference time (1.00 = as fast as hand-written).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from archspec.bench import BenchOptions, bench

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "resnet50": "torchvision",
    "efficientnet_b0": "torchvision",
    "vit_b_16": "torchvision",
    "mixer_b16": "timm",
    "mobilenet_v1": "timm",
    "mobilenet_v2": "torchvision",
    "mobilenet_v3_large": "torchvision",
    "mnasnet1_0": "torchvision",
    "seresnet50": "timm",
    "convnext_tiny": "torchvision",
    "alexnet": "torchvision",
    "googlenet": "torchvision",
    "inception_v3": "torchvision",
    "xception": "timm",
    "squeezenet1_0": "torchvision",
    "shufflenet_v2_x1_0": "torchvision",
    "regnet_y_400mf": "torchvision",
    "swin_t": "torchvision",
    "swin_v2_t": "torchvision",
    "efficientnet_v2_s": "torchvision",
    "fcn_resnet50": "torchvision",
    "deeplabv3_resnet50": "torchvision",
    "lraspp_mobilenet_v3_large": "torchvision",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("models", nargs="*", default=list(CASES))
    args = parser.parse_args()
    print(f"{'model':<18}{'reference ms':>14}{'archspec ms':>14}{'ratio':>8}")
    for name in args.models:
        options = BenchOptions(
            device=args.device,
            batch=args.batch,
            vs=CASES.get(name, "torchvision"),
            threads=args.threads,
            warmup=1,
            iters=args.repeats,
        )
        report = bench(ROOT / "specs" / f"{name}.yaml", options)
        assert report.reference is not None and report.ratio is not None
        assert report.output_error is not None and report.output_error < 1e-4, report.output_error
        print(f"{name:<18}{report.reference.median_ms:>14.1f}{report.ours.median_ms:>14.1f}{report.ratio:>8.2f}")
    print(
        f"({report.torch_version}, {args.device}: {report.device_name}, {report.threads} threads, batch {args.batch})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
