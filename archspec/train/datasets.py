"""Batches for the loop, from memory or streamed from files: how a split reaches the model.

    in memory   the small built-in sets (digits, CIFAR, MNIST, a text): uint8 tensors on the training device,
                indexed per batch. Nothing is faster for data that fits.
    streamed    an image folder: its files listed once (paths packed in one bytes object), decoded, bounded
                and resized to the spec's input by a pool of torch DataLoader workers while the model computes,
                so memory stays flat as the folder grows.

Both are fed the same index batches (a slice of the epoch's permutation, this process's share of it under
DDP: each process streams only its own images, as DistributedSampler would, with the loop's contiguous
shares), and both hand the loop the same thing: float images in [0, 1] at the spec's size, labels, and the
positions of the batch that were kept. Workers only decode; augmentation is drawn and applied after
collation (archspec.train.augment), so a run is the same with 0 or 8 workers, streamed or in memory.

An image that cannot be used (a FIFO or device named x.png, a file too large, a header declaring too many
pixels, anything the decoder raises) is reported by path: AS912 by default (`--bad-images fail`), or
left out of its batch and counted (`--bad-images skip`). Bounds: archspec.limits.DataLimits (docs/limits.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import os
from pathlib import Path
import random
import stat
import sys
from typing import Any
import warnings

import numpy as np
import torch

from archspec.errors import ArchspecError
from archspec.limits import DATA, DataLimits
from archspec.train.data import CORRUPT, IMAGE_SUFFIXES, MISSING, Split, prepare
from archspec.train.distributed import cpus

BAD_OPTION = "AS913"
STEP_FAILED = "AS917"
BAD_IMAGES = ("fail", "skip")
MAX_WORKERS = 8  # past this, decoding small images is not what limits a step
MAX_WORKERS_OPTION = 64  # what --workers accepts
# Decoded batches a worker pool may hold ready: deep enough that the workers keep decoding while the
# training process stalls (the first optimizer imports torch._dynamo, 1.5 s, right after the first epoch's
# pool starts: at 32 px that is ~60 batches), bounded in bytes because they wait in shared memory, which
# Docker limits to 64 MB by default: large images get torch's own depth of 2.
PREFETCH_BYTES = 32 * 2**20
MAX_PREFETCH = 64  # batches per worker


def check_options(workers: int | None, bad_images: str) -> None:
    """--workers and --bad-images, for train and eval before anything is loaded, and for every Feed: a count
    past MAX_WORKERS_OPTION would have the DataLoader start that many processes (a typo, not a machine)."""
    if workers is not None and not 0 <= workers <= MAX_WORKERS_OPTION:
        raise ArchspecError(BAD_OPTION, f"--workers {workers}: give 0 to {MAX_WORKERS_OPTION} decoding processes")
    if bad_images not in BAD_IMAGES:
        raise ArchspecError(BAD_OPTION, f"--bad-images {bad_images!r}: use fail or skip")


def default_workers(processes: int = 1) -> int:
    """Decoding workers per training process: one per usable core, shared among the processes, at most 8 (ultralytics'
    rule). Not the cores but one: a process training a light model mostly waits for its batches, and on 2
    cores one worker left it 1.3x slower per epoch than two (benchmarks/train_pipeline.py)."""
    return max(0, min(cpus() // max(1, processes), MAX_WORKERS))


class BadImage(Exception):
    """An image file that cannot be used: `reason` says why, in words, without the path."""

    def __init__(self, path: str, reason: str):
        super().__init__(path, reason)  # the args a worker's result is unpickled with
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path} {self.reason}"


def _kind_of(mode: int) -> str:
    return (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device or special file"
    )


def decode(path: str, size: tuple[int, int] | None, limits: DataLimits = DATA) -> np.ndarray:
    """The image at `path` as uint8 RGB (H, W, 3), resized to `size` (H, W) when given; BadImage otherwise.
    Checked before anything large is read or allocated: a regular file (stat, so a FIFO is never opened), of at
    most image_bytes, whose header declares at most image_pixels. JPEGs are decoded at the smallest DCT scale
    that still covers `size` (PIL's draft mode), which is most of the time a folder of photos takes."""
    from PIL import Image

    try:
        info = os.stat(path)
    except OSError as exc:
        raise BadImage(path, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadImage(path, f"is {_kind_of(info.st_mode)}, not a regular file")
    if info.st_size > limits.image_bytes:
        raise BadImage(
            path,
            f"holds {info.st_size:,} bytes, more than the {limits.image_bytes:,} an image may (DataLimits.image_bytes)",
        )
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the stat is refused by fstat, not waited on.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadImage(path, f"cannot be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadImage(path, "is not a regular file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(file) as image:
                    width, height = image.size
                    if width * height > limits.image_pixels or width < 1 or height < 1:
                        raise BadImage(
                            path,
                            f"declares {width}x{height} pixels; an image may have at most "
                            f"{limits.image_pixels:,} (DataLimits.image_pixels)",
                        )
                    if size is not None and image.format == "JPEG":
                        image.draft("RGB", (size[1], size[0]))
                    rgb = image.convert("RGB")
            if size is not None and rgb.size != (size[1], size[0]):
                rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
        except BadImage:
            raise
        except Image.UnidentifiedImageError:
            raise BadImage(
                path, "is not an image PIL can read (corrupt, or another format under an image suffix)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a decoder raises anything on hostile bytes (SyntaxError, ...)
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise BadImage(
                path, f"is not a readable image ({type(exc).__name__}{': ' + detail if detail else ''})"
            ) from None


# --- image folders: listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFiles:
    """One split of an image folder, as file paths: all paths in one bytes object (`blob`, os.fsencode'd,
    `offsets[i]:offsets[i + 1]`), so forked workers share it without touching a refcount per path (a list of
    str would be copied into every worker page by page as it is read)."""

    folder: Path
    blob: bytes
    offsets: np.ndarray  # int64 (N + 1,)
    labels: torch.Tensor  # int64 (N,)
    size: tuple[int, int] | None  # (H, W): every image is resized to it (None: kept, for data.load without a size)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def path(self, i: int) -> str:
        return os.fsdecode(self.blob[int(self.offsets[i]) : int(self.offsets[i + 1])])

    def to(self, device: torch.device) -> ImageFiles:  # read where the loop asks, moved batch by batch
        return self

    def subset(self, n: int) -> ImageFiles:
        return ImageFiles(self.folder, self.blob, self.offsets[: n + 1], self.labels[:n], self.size)


def list_images(
    folder: Path, classes: Sequence[str], size: tuple[int, int] | None, limits: DataLimits = DATA
) -> ImageFiles:
    """The image files of `folder`/<class>/ for each class (sorted by name within a class), without opening
    any; at most limits.images of them."""
    parts: list[bytes] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            continue
        try:
            names = sorted(
                e.name
                for e in os.scandir(sub)
                if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and not e.is_dir()
            )
        except OSError as exc:
            raise ArchspecError(CORRUPT, f"cannot list {sub}/: {exc.strerror or exc}") from None
        if len(labels) + len(names) > limits.images:
            raise ArchspecError(
                CORRUPT,
                f"{folder}/ holds more than {limits.images:,} images, the most one split may "
                "(DataLimits.images, docs/limits.md); train on a part of it",
            )
        parts.extend(os.fsencode(sub / n) for n in names)
        labels.extend([label] * len(names))
    if not labels:
        raise ArchspecError(MISSING, f"{folder}/ holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return ImageFiles(folder, b"".join(parts), offsets, torch.tensor(labels, dtype=torch.long), size)


def read_all(files: ImageFiles, bad_images: str = "fail") -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
    """Every image of `files` decoded into one uint8 (N, 3, H, W) tensor, for data.load's in-memory folders."""
    images, labels, bad = [], [], []
    for i in range(len(files)):
        try:
            images.append(torch.from_numpy(decode(files.path(i), files.size).copy()).permute(2, 0, 1))
            labels.append(int(files.labels[i]))
        except BadImage as exc:
            if bad_images == "fail":
                raise failure(exc) from None
            bad.append(exc)
    if not images:
        raise ArchspecError(
            CORRUPT,
            f"{files.folder}/: none of its {len(files):,} images can be read (the first: "
            f"{bad[0].path} {bad[0].reason})",
        )
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) > 1:  # only without a target size (data.load(text) with no image_size)
        raise ArchspecError(
            CORRUPT,
            f"{files.folder}/: images differ in size ({', '.join(map(str, sorted(shapes)[:3]))}); "
            "give a size to resize them to",
        )
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), bad


def failure(exc: BadImage) -> ArchspecError:
    return ArchspecError(
        CORRUPT, f"{exc.path} {exc.reason}; replace or remove it, or train without it with --bad-images skip"
    )


# --- streaming through a DataLoader ---------------------------------------------------------------------------


class _Decoded(torch.utils.data.Dataset):
    """The worker side: sample i -> (uint8 HWC array or None, the BadImage or None). Never raises, so a bad
    file reaches the main process as data, not as a worker traceback."""

    def __init__(self, files: ImageFiles, limits: DataLimits):
        self.files, self.limits = files, limits

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, BadImage | None]:
        try:
            return decode(self.files.path(i), self.files.size, self.limits), None
        except BadImage as exc:
            return None, exc


def _collate(
    samples: list[tuple[np.ndarray | None, BadImage | None]],
) -> tuple[torch.Tensor, list[int], list[BadImage]]:
    """Decoded samples -> uint8 (n, 3, H, W) of the good ones, their positions in the batch, the bad ones."""
    kept = [i for i, (array, _) in enumerate(samples) if array is not None]
    bad = [exc for _, exc in samples if exc is not None]
    if not kept:
        return torch.empty(0, dtype=torch.uint8), kept, bad
    stacked = np.stack([samples[i][0] for i in kept])  # type: ignore[misc]
    return torch.from_numpy(stacked).permute(0, 3, 1, 2), kept, bad


def _seed_worker(worker: int) -> None:
    # torch's convention (DataLoader's generator seeds each worker's torch RNG); the others follow it, so
    # anything a decoder draws is the same on every run. The loop's own draws never happen here.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class _Batches(torch.utils.data.Sampler):
    """The index batches of the current pass, set before each one (a persistent loader keeps its sampler)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def prefetch_depth(batch: int, shape: Sequence[int], workers: int) -> int:
    """Batches each worker decodes ahead (DataLoader's prefetch_factor): PREFETCH_BYTES of uint8 RGB batches
    of `batch` images at `shape`'s size over the pool, between torch's default of 2 and MAX_PREFETCH."""
    per_batch = max(1, batch) * 3 * int(shape[-2]) * int(shape[-1])
    return max(2, min(MAX_PREFETCH, PREFETCH_BYTES // (per_batch * max(1, workers))))


def _worker_errors(
    iterator: Iterator[tuple[torch.Tensor, list[int], list[BadImage]]],
) -> Iterator[tuple[torch.Tensor, list[int], list[BadImage]]]:
    """The loader iterator's batches; a worker that died (killed for memory, a crash in a decoder's C code) is
    AS917 rather than the loader's RuntimeError traceback. Bad files never get here: _Decoded returns them."""
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ArchspecError(
                STEP_FAILED,
                f"an image-decoding worker failed: {first}; with --workers 0 the images "
                "are decoded in the training process, where the failing file shows",
            ) from None
        yield batch


class Feed:
    """A split as the loop consumes it: `feed(batches)` yields (x, y, kept) per index batch, with x the model's
    input on `device` (images: float in [0, 1] at `shape`; a text: int64 token ids), y its targets and `kept`
    the positions of the batch that made it (all of them unless an image was skipped). A streamed pass starts
    decoding when `feed(batches)` is called, not at its first batch: the loop starts the first epoch's pass
    before the slow set-up that follows, and the workers fill their prefetch meanwhile."""

    def __init__(
        self,
        split: Split | ImageFiles,
        shape: tuple[int, ...],
        device: torch.device,
        text: bool = False,
        workers: int = 0,
        bad_images: str = "fail",
        seed: int = 0,
        persistent: bool = False,
        report: bool = True,
        limits: DataLimits = DATA,
        batch: int = 64,
    ):
        check_options(workers, bad_images)
        self.split, self.shape, self.device, self.text = split, shape, device, text
        self.bad_images, self.report = bad_images, report
        self.skipped: list[BadImage] = []  # over the run
        self.streamed = isinstance(split, ImageFiles)
        self.workers = workers if self.streamed else 0
        self._loader: torch.utils.data.DataLoader | None = None
        self._sampler = _Batches()
        if isinstance(split, ImageFiles):
            self._loader = torch.utils.data.DataLoader(
                _Decoded(split, limits),
                batch_sampler=self._sampler,
                num_workers=workers,
                collate_fn=_collate,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(seed),
                prefetch_factor=prefetch_depth(batch, shape, workers) if workers else None,
                persistent_workers=persistent and workers > 0,
                worker_init_fn=_seed_worker if workers else None,
                # fork on Linux even where the process default is another method: a DDP process started by the
                # forkserver would otherwise start each worker through it, importing torch again (5-9 s each).
                # Workers only decode (PIL, numpy), never CUDA or autograd, which is what makes fork safe here.
                multiprocessing_context="fork" if workers and sys.platform == "linux" else None,
            )
        elif not isinstance(split, Split):
            raise TypeError(f"a Feed takes a data.Split or an ImageFiles, not {type(split).__name__}")

    def __len__(self) -> int:
        return len(self.split)

    def describe(self) -> str:
        """One line for the run's output: where the batches come from."""
        if not self.streamed:
            return "data in memory"
        return (
            f"data streamed from files by {self.workers} decoding worker{'s' * (self.workers != 1)}"
            if self.workers
            else "data streamed from files in this process (--workers 0)"
        )

    def __call__(
        self, batches: Sequence[torch.Tensor]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice | torch.Tensor]]:
        if isinstance(self.split, Split):
            return self._from_memory(self.split, batches)
        assert self._loader is not None
        self._sampler.batches = [b.tolist() for b in batches]
        try:
            started = iter(self._loader)  # the workers start (or resume) decoding now
        except RuntimeError as exc:
            raise ArchspecError(STEP_FAILED, f"the image-decoding workers did not start: {exc}") from None
        return self._streamed(self.split, started, batches)

    def _from_memory(
        self, split: Split, batches: Sequence[torch.Tensor]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice | torch.Tensor]]:
        shape: tuple[int, int, int] = self.shape  # type: ignore[assignment]  # images: (C, H, W)
        for index in batches:
            index = index.to(self.device)
            if self.text:
                yield split.images[index].long(), split.labels[index].long(), slice(None)
            else:
                yield prepare(split.images[index], shape), split.labels[index], slice(None)

    def _streamed(
        self, split: ImageFiles, started: Iterator[Any], batches: Sequence[torch.Tensor]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice | torch.Tensor]]:
        shape: tuple[int, int, int] = self.shape  # type: ignore[assignment]  # images: (C, H, W)
        skipped = 0
        labels = split.labels
        for (images, kept, bad), index in zip(_worker_errors(started), batches):
            if bad:
                if self.bad_images == "fail":
                    raise failure(bad[0])
                skipped += len(bad)
                self.skipped.extend(bad[: max(0, 10 - len(self.skipped))])  # the first few, to name them
            positions = torch.tensor(kept, dtype=torch.long)
            x = (
                prepare(images.to(self.device, non_blocking=True), shape)
                if kept
                else torch.empty((0, *self.shape), device=self.device)
            )
            yield x, labels[index[positions]].to(self.device), positions
        if skipped and self.report:
            first = self.skipped[0]
            print(
                f"note: skipped {skipped:,} unreadable image{'s' * (skipped != 1)} of {split.folder}/ "
                f"(--bad-images skip); the first: {first.path} {first.reason}",
                file=sys.stderr,
            )
