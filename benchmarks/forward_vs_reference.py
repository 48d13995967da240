"""Forward-pass speed of archspec-built modules against the reference implementations, same run.

    python benchmarks/forward_vs_reference.py [--batch 4] [--repeats 5] [--device cpu|cuda]

Both sides get identical weights (through --weights), run in eval mode under no_grad, interleaved
so that machine noise hits both; the ratio is ours / reference (1.00 = as fast as hand-written).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
import tempfile
import time

import timm
import torch
import torchvision

import archspec

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(weights=None),
    "vit_b_16": lambda: torchvision.models.vit_b_16(weights=None),
    "mixer_b16": lambda: timm.create_model("mixer_b16_224", pretrained=False),
}


def timed(module: torch.nn.Module, x: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    module(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("models", nargs="*", default=list(CASES))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'model':<18}{'reference ms':>14}{'archspec ms':>14}{'ratio':>8}")
    for name in args.models:
        reference = CASES[name]().eval().to(args.device)
        with tempfile.TemporaryDirectory() as folder:
            weights = Path(folder) / "w.pt"
            torch.save(reference.state_dict(), weights)
            ours = archspec.build(ROOT / "specs" / f"{name}.yaml", weights=weights).eval().to(args.device)
        x = torch.randn(args.batch, *archspec.summary(ROOT / "specs" / f"{name}.yaml").input, device=args.device)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), reference(x))  # also the warm-up
            ref_times, our_times = [], []
            for _ in range(args.repeats):
                ref_times.append(timed(reference, x))
                our_times.append(timed(ours, x))
        r, o = statistics.median(ref_times) * 1e3, statistics.median(our_times) * 1e3
        print(f"{name:<18}{r:>14.1f}{o:>14.1f}{o / r:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
