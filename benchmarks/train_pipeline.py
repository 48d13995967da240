"""Does `archspec train` on an image folder keep up with a plain torchvision loop, and does its memory stay
flat as the folder grows?

    python benchmarks/train_pipeline.py          # 2,000 and 16,000 JPEGs of 64x64, 10 classes, lenet5
    python benchmarks/train_pipeline.py --images 4000 --rss-images 16000 --workers 2 --rounds 3

1. Time, on each folder: one epoch of `python -m archspec train SPEC --data folder:DIR --epochs 1` timed as a
   whole process (start-up, spec compile, listing, the epoch, the evaluation of the test split, checkpoints,
   exit), against a plain loop in this process: torchvision.datasets.ImageFolder (Resize to the spec's input,
   Grayscale where the spec takes one channel, ToTensor, Normalize) + DataLoader(num_workers=2, shuffle)
   training the same module (archspec.build of the same spec, seed 0) with the same batch, SGD (momentum 0.9,
   lr 0.05, the same weight-decay groups), timed around its own epoch only. The two alternate for --rounds
   rounds; the medians' ratio is printed (target <= 1.25x), with the time a new process takes to import
   torch: where that alone is over 1.25x the plain epoch (2,000 small images on 2 cores), no new process can
   meet the target, and the larger folder is the one that says whether the pipeline keeps up.
2. Memory: the peak RSS of the train process (the largest of it and its decoding workers: wait4's rusage)
   on --rss-images JPEGs against --images (target <= 1.15x).

The images are written once to a temporary folder (random noise around a colour per class, so that JPEG
decoding does real work); each class gets a tenth of --images for its test split.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_images(root: Path, count: int, size: int, classes: int, seed: int = 0) -> Path:
    """`count` training JPEGs (and count / 10 test ones) of size x size in root/{train,test}/<class>/."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (classes, 3))
    for split, n in (("train", count), ("test", max(classes, count // 10))):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            c = i % classes
            noise = rng.normal(0, 40, (size, size, 3)) + colours[c]
            Image.fromarray(noise.clip(0, 255).astype(np.uint8)).save(
                root / split / f"class{c}" / f"{i:06d}.jpg", quality=90
            )
    return root


def archspec_epoch(spec: str, folder: Path, out: Path, batch: int, workers: int | None) -> tuple[float, float, int]:
    """Wall seconds of one `archspec train` process (one epoch, its evaluation included), seconds of the
    epoch's steps alone (from the run's own images/s, state.json), and peak RSS (KiB)."""
    cmd = [
        sys.executable,
        "-m",
        "archspec",
        "train",
        spec,
        "--data",
        f"folder:{folder}",
        "--epochs",
        "1",
        "--batch-size",
        str(batch),
        "--out",
        str(out),
    ]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"archspec train failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    history = json.loads((out / "state.json").read_text())["history"][-1]
    images = len([p for p in (folder / "train").rglob("*.jpg")]) // batch * batch
    return seconds, images / history["images_per_s"], usage.ru_maxrss


def plain_epoch(spec: str, folder: Path, batch: int) -> float:
    """One epoch of the plain torchvision loop on the same module; seconds of the epoch only."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    from archspec.train import TrainOptions, loop

    shape = loop.spec_input(spec, {}, None)
    model = loop.build_model(spec, {}, None, len([p for p in (folder / "train").iterdir() if p.is_dir()]), 0)
    steps = [transforms.Resize((int(shape[1]), int(shape[2])))]
    if shape[0] == 1:
        steps.append(transforms.Grayscale())
    steps += [transforms.ToTensor(), transforms.Normalize([0.5] * int(shape[0]), [0.5] * int(shape[0]))]
    train = datasets.ImageFolder(str(folder / "train"), transform=transforms.Compose(steps))
    loader = torch.utils.data.DataLoader(
        train, batch_size=batch, shuffle=True, num_workers=2, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    module = model.module.train()
    optimizer = loop.make_optimizer(TrainOptions(spec=spec, data="", batch_size=batch), module)
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(module(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def import_floor() -> float:
    """Wall seconds from starting a new Python process to its having imported torch (time.perf_counter is the
    system's monotonic clock on Linux, the same in both processes): what any fresh-process torch program,
    `archspec train` included, pays before it can train a step."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "import torch, time; print(time.perf_counter())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout) - start


def time_folder(spec: str, folder: Path, work: Path, args: argparse.Namespace) -> list[int]:
    """--rounds alternating rounds of archspec's whole process and the plain loop's epoch on `folder`; prints
    each round and the medians' ratio; returns the archspec processes' peak RSS (KiB)."""
    ours, steps, plain, rss = [], [], [], []
    for r in range(args.rounds):
        seconds, epoch, peak = archspec_epoch(spec, folder, work / f"{folder.name}-run{r}", args.batch, args.workers)
        ours.append(seconds)
        steps.append(epoch)
        rss.append(peak)
        plain.append(plain_epoch(spec, folder, args.batch))
        print(
            f"  round {r + 1}: archspec train {seconds:.2f} s whole process ({epoch:.2f} s of steps), "
            f"plain loop {plain[-1]:.2f} s (its epoch)",
            flush=True,
        )
    whole, alone, hand = statistics.median(ours), statistics.median(steps), statistics.median(plain)
    floor = import_floor()
    print(
        f"time on {folder.name}: archspec {whole:.2f} s (whole process) / plain {hand:.2f} s = {whole / hand:.2f}x "
        f"(target <= 1.25x); the epoch's steps alone {alone:.2f} s = {alone / hand:.2f}x; a new process importing "
        f"torch {floor:.2f} s = {floor / hand:.2f}x (medians of {args.rounds})",
        flush=True,
    )
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "specs/lenet5.yaml"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument(
        "--rss-images", type=int, default=16000, help="the larger folder, timed and memory-checked (0: skip it)"
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, help="archspec's --workers (default: its own default)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per folder (0: only the memory check)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="archspec-pipeline-") as tmp:
        work = Path(tmp)
        peaks: dict[int, list[int]] = {}
        for count, seed in ((args.images, 0), (args.rss_images, 1)):
            if not count:
                continue
            start = time.perf_counter()
            folder = make_images(work / f"{count}-images", count, args.size, args.classes, seed)
            print(
                f"wrote {count:,} + {count // 10:,} JPEGs of {args.size}x{args.size} in "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )
            if args.rounds:
                peaks[count] = time_folder(args.spec, folder, work, args)
            else:
                peaks[count] = [archspec_epoch(args.spec, folder, work / f"{count}-rss", args.batch, args.workers)[2]]
        if args.rss_images:
            small, large = max(peaks[args.images]), max(peaks[args.rss_images])
            print(
                f"memory: peak RSS {large / 1024:.0f} MiB on {args.rss_images:,} images / {small / 1024:.0f} MiB "
                f"on {args.images:,} = {large / small:.2f}x (target <= 1.15x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
