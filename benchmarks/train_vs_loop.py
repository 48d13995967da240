"""Images/s of archspec's training loop against a minimal hand-written loop: same module (built from the
same spec and seed), same optimizer (SGD, momentum 0.9, the same weight decay groups), same batch, same
data in the device's memory.

    python benchmarks/train_vs_loop.py                                 # seed_cnn on digits, CPU
    python benchmarks/train_vs_loop.py --spec resnet18 --set resolution=32 --threads 2
    python benchmarks/train_vs_loop.py --spec resnet50 --device cuda --precision bf16 --channels-last --batch 128 \\
        --data cifar10:data/cifar-10-batches-py --rounds 3

The two sides alternate epoch by epoch (ours, hand, ours, hand, ...; ours resumes its run for each
epoch), so that the machine's load drifts over both alike; the first epoch of each is a warm-up and is
not counted. Ours is
`archspec.train.loop.run` (what `archspec train` runs: batch order, on-device resize and normalisation,
metrics, progress, a checkpoint and an evaluation per epoch; only the steps' time is counted, as the
loop's own images/s figure does). The hand loop indexes pre-resized, pre-normalised float tensors and
does forward, loss, backward, step: nothing else. The ratio is ours / hand in images/s (above 0.95:
the loop adds less than 5%).
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.params import parse_override  # noqa: E402
from archspec.train import TrainOptions, data, loop  # noqa: E402


class HandLoop:
    """The minimal loop: pre-resized, pre-normalised tensors in memory; forward, loss, backward, step."""

    def __init__(self, options: TrainOptions):
        self.options = options
        self.device = loop.device_of(options.device)
        dataset = data.load(options.data)
        model = loop.build_model(options.spec, dict(options.overrides), None, len(dataset.classes), options.seed)
        self.module = model.module.to(self.device).train()
        self.layout = layout = torch.channels_last if options.channels_last else torch.contiguous_format
        self.module = self.module.to(memory_format=layout)
        self.optimizer = loop.make_optimizer(options, self.module)
        self.x = data.normalize(data.prepare(dataset.train.images.to(self.device), model.shape)).contiguous(
            memory_format=layout
        )
        self.y = dataset.train.labels.to(self.device)
        self.epochs = 0

    def epoch(self) -> float:
        """One epoch; images/s of its steps."""
        batch, device = self.options.batch_size, self.device
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16) if self.options.precision == "bf16" else nullcontext()
        )
        steps = len(self.y) // batch
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.epochs)).to(device)
        self.epochs += 1
        start = time.perf_counter()
        for i in range(steps):
            index = order[i * batch : (i + 1) * batch]
            with autocast:
                logits = self.module(self.x[index].contiguous(memory_format=self.layout))
            loss = F.cross_entropy(logits.float(), self.y[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return steps * batch / (time.perf_counter() - start)


def ours_epoch(options: TrainOptions, folder: Path, done: int) -> float:
    """One more epoch of archspec's loop, resuming the run in `folder` (so the two sides can alternate
    epoch by epoch); images/s of its steps, as the loop reports it."""
    result = loop.run(options.with_(epochs=done + 1, out=str(folder), resume=True, quiet=True))
    return result.history[-1].images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="seed_cnn")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true", help="NHWC module and batches on both sides")
    parser.add_argument(
        "--rounds", type=int, default=6, help="timed epochs per side, alternating, after a warm-up epoch"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = args.spec if args.spec.endswith(".yaml") else str(ROOT / "specs" / f"{args.spec}.yaml")
    overrides = dict(parse_override(item) for item in args.set)
    options = TrainOptions(
        spec=spec,
        data=args.data,
        overrides=overrides,
        batch_size=args.batch,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        schedule="none",
        weight_decay=5e-4,
        channels_last=args.channels_last,
    )
    ours: list[float] = []
    hand: list[float] = []
    hand_loop = HandLoop(options)
    with tempfile.TemporaryDirectory(prefix="archspec-train-bench-") as folder:
        for epoch in range(args.rounds + 1):  # epoch by epoch, alternating; the first is a warm-up
            o = ours_epoch(options, Path(folder) / "run", epoch)
            h = hand_loop.epoch()
            if epoch:
                ours.append(o)
                hand.append(h)
    o, h = statistics.median(ours), statistics.median(hand)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    layout = ", channels_last" if args.channels_last else ""
    print(
        f"{args.spec} {' '.join(args.set)} on {args.data}, batch {args.batch}, {args.precision}{layout}, {device}, "
        f"torch {torch.__version__}"
    )
    print(f"  archspec loop  {o:10,.0f} img/s   (median of {len(ours)} epochs: {', '.join(f'{v:,.0f}' for v in ours)})")
    print(f"  hand loop      {h:10,.0f} img/s   (median of {len(hand)} epochs: {', '.join(f'{v:,.0f}' for v in hand)})")
    print(f"  ratio          {o / h:10.3f}   (ours / hand; target >= 0.95)")


if __name__ == "__main__":
    main()
