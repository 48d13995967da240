"""The DATA argument -> a dataset in memory: uint8 images (N, C, H, W) and int64 labels per split, or
the token windows of a text.

Kinds, with no downloads at run time:

    digits           scikit-learn's bundled 8x8 digits (1,797 images; a fixed 80/20 split, seed 0)
    cifar10[:PATH]   the official python version, a `cifar-10-batches-py` folder
    cifar100[:PATH]  the official python version, a `cifar-100-python` folder (fine labels)
    mnist[:PATH], fashion-mnist[:PATH]   the four idx files, raw or .gz
    folder:PATH      an image folder: PATH/train/<class>/*.png|jpg and PATH/test/<class>/... (or val/)
    text:PATH        a UTF-8 text file, read as bytes (a vocabulary of 256): next-token prediction over
                     seq_len windows, the last tenth held out for evaluation

A bare PATH is recognised by its files. The CIFAR pickles are read by an unpickler that accepts only
numpy's array reconstruction and builtin values, so a planted pickle cannot run code, and whose arrays are
bounded before they are allocated (archspec.limits.DataLimits). Images stay uint8 (CIFAR-10 is 150 MB) and
are resized to the spec's input batch by batch, on the training device (`prepare`). An image folder is
listed here and, for training (`load(..., stream=True)`), decoded batch by batch by archspec.train.datasets;
read whole (the default here), its images are resized once when read.

What a dataset trains is its task, one of TASKS: `classify` (one label per image) for the image kinds,
`next_token` for text. The loop takes the loss, the metrics and the model's expected output from it.
"""

from __future__ import annotations

from dataclasses import dataclass
import gzip
import importlib.util
import math
import os
from pathlib import Path
import pickle
import stat
import struct
import sys
from typing import Any
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from archspec.errors import ArchspecError
from archspec.limits import DATA

MISSING = "AS911"  # the dataset is not where the DATA argument points (usage: exit 2)
CORRUPT = "AS912"  # a data file is there but cannot be read (exit 1)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
IDX_MAX_BYTES = (
    DATA.idx_bytes
)  # the most an idx file may hold (decompressed): MNIST's largest is 47 MB, EMNIST's 550 MB
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DEFAULT_PATHS = {
    "cifar10": "data/cifar-10-batches-py",
    "cifar100": "data/cifar-100-python",
    "mnist": "data/mnist",
    "fashion-mnist": "data/fashion-mnist",
}
KINDS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "folder", "text")
# What a dataset trains: a class per image (cross-entropy over the classes, top-1/top-5), or the next token
# at every position of a window (cross-entropy per token, in nats; top-1/top-5 of the next token).
CLASSIFY, NEXT_TOKEN = "classify", "next_token"
TASKS = (CLASSIFY, NEXT_TOKEN)
TEXT_MAX_BYTES = 1 << 28  # the most a text file may hold (256 MiB; enwik8 is 100 MB): it is held in memory twice
TEXT_TEST_FRACTION = 0.1  # the tail held out for evaluation (at least one window)
# Training windows start every seq_len / TEXT_TRAIN_OVERLAP tokens, so an epoch shows each byte at that many
# places of the context (as training on random offsets does); the held-out windows do not overlap.
TEXT_TRAIN_OVERLAP = 4
BYTES = 256  # the vocabulary of a text read as bytes
MEAN, STD = 0.5, 0.5  # inputs are scaled to [-1, 1]: one rule for every dataset, no statistics to compute


@dataclass(frozen=True)
class Split:
    """N samples, indexed along the first axis of both tensors. A text's samples are windows of token
    ids: `images` holds each window's inputs and `labels` its next tokens, both uint8 (N, seq_len)."""

    images: torch.Tensor  # uint8 (N, C, H, W), or uint8 (N, seq_len) token ids
    labels: torch.Tensor  # int64 (N,), or uint8 (N, seq_len) next tokens

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    name: str  # as given (digits, cifar10:PATH, ...), for the results table
    kind: str
    train: Split  # or, for a streamed image folder, a datasets.ImageFiles (paths, decoded batch by batch)
    test: Split
    classes: tuple[str, ...]  # the classes, or a text's vocabulary (the 256 byte values)
    task: str = CLASSIFY  # one of TASKS

    @property
    def text(self) -> bool:
        return self.task == NEXT_TOKEN


def parse(text: str) -> tuple[str, Path | None]:
    """DATA -> (kind, path). A bare kind uses its default folder; a bare path is recognised by its files."""
    kind, sep, rest = text.partition(":")
    if sep and kind in KINDS:
        if kind == "digits":
            raise ArchspecError(MISSING, "digits is bundled with scikit-learn and takes no path: write --data digits")
        if kind == "text" and not rest:
            raise ArchspecError(MISSING, "--data text: give the text file after the colon, e.g. --data text:corpus.txt")
        if not rest:
            raise ArchspecError(MISSING, f"--data {text!r}: give the folder after the colon, e.g. {kind}:data/{kind}")
        return kind, Path(rest)
    if text == "digits":
        return "digits", None
    if text in DEFAULT_PATHS:
        return text, Path(DEFAULT_PATHS[text])
    if text == "folder":
        raise ArchspecError(
            MISSING, "--data folder needs a path: --data folder:PATH (PATH/train/<class>/..., PATH/test/<class>/...)"
        )
    if text == "text":
        raise ArchspecError(MISSING, "--data text needs a path: --data text:PATH (a UTF-8 text file)")
    path = Path(text)
    if not path.is_dir():
        hint = f" (for a text file, write --data text:{text})" if path.is_file() else ""
        raise ArchspecError(
            MISSING,
            f"--data {text!r} is neither a dataset ({', '.join(KINDS)}) nor a folder{hint}; "
            "give e.g. --data digits, --data cifar10:PATH or the path of a dataset folder",
        )
    return _detect(path), path


def _detect(path: Path) -> str:
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        return "cifar10"
    if (path / "train").is_file() and (path / "meta").is_file():
        return "cifar100"
    if any((path / f"{name}{gz}").exists() for name in MNIST_FILES for gz in ("", ".gz")):
        return "mnist"
    return "folder"


def load(
    text: str,
    image_size: tuple[int, int] | None = None,
    seq_len: int | None = None,
    stream: bool = False,
    bad_images: str = "fail",
) -> Dataset:
    """Read the dataset DATA names. `image_size` (H, W) is used by image folders only, whose images are
    resized when read; the others keep their own size until `prepare`. `seq_len` is the window of a text
    (the spec's input [seq_len]); a text needs it. With `stream`, an image folder is only listed: its splits
    are datasets.ImageFiles, decoded batch by batch (datasets.Feed); the built-in sets are read into memory
    either way. `bad_images` (fail or skip) is what an unreadable image of a folder read here does."""
    kind, path = parse(text)
    if kind == "text":
        assert path is not None
        train, test = _text(path, seq_len)
        return Dataset(text, kind, train, test, tuple(str(b) for b in range(BYTES)), NEXT_TOKEN)
    if kind == "digits":
        train, test, classes = _digits()
    elif kind == "cifar10":
        train, test, classes = _cifar10(_folder(path, kind))
    elif kind == "cifar100":
        train, test, classes = _cifar100(_folder(path, kind))
    elif kind in ("mnist", "fashion-mnist"):
        train, test, classes = _mnist(_folder(path, kind), kind)
    else:
        train, test, classes = _image_folder(_folder(path, kind), image_size, stream, bad_images)
    return Dataset(text, kind, train, test, classes)


def _folder(path: Path | None, kind: str) -> Path:
    assert path is not None
    if not path.is_dir():
        raise ArchspecError(MISSING, f"no {kind} data at {path}/. {_where(kind, path)}")
    return path


def _where(kind: str, path: Path) -> str:
    """What to put where, for each kind: the message a missing or incomplete dataset gets."""
    if kind == "cifar10":
        return (
            f"Download {CIFAR10_URL} (the python version), extract it, and give its cifar-10-batches-py folder "
            f"(data_batch_1 ... data_batch_5, test_batch, batches.meta) as --data cifar10:{path}"
        )
    if kind == "cifar100":
        return (
            f"Download {CIFAR100_URL} (the python version), extract it, and give its cifar-100-python folder "
            f"(train, test, meta) as --data cifar100:{path}"
        )
    if kind in ("mnist", "fashion-mnist"):
        return (
            f"Put the four idx files ({', '.join(MNIST_FILES)}; raw or .gz, as distributed) in {path}/ "
            f"and give --data {kind}:{path}"
        )
    return (
        f"An image folder holds one subfolder per class under {path}/train/ and {path}/test/ (or val/), "
        f"with {', '.join(IMAGE_SUFFIXES)} images in them"
    )


def _digits() -> tuple[Split, Split, tuple[str, ...]]:
    table = _digits_table()
    images = torch.from_numpy(np.rint(table[:, :64].reshape(-1, 1, 8, 8) * (255 / 16))).to(
        torch.uint8
    )  # 0..16 -> 0..255
    labels = torch.from_numpy(table[:, 64]).long()
    # A fixed split: the same 360 test images on every run and every machine.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    test, train = order[:360], order[360:]
    return Split(images[train], labels[train]), Split(images[test], labels[test]), tuple(str(i) for i in range(10))


def _digits_table() -> np.ndarray:
    """scikit-learn's digits.csv.gz (64 pixels and the label per row), the file load_digits reads.
    Read directly when it is where scikit-learn keeps it: importing sklearn costs seconds in every
    process (DDP workers, each test subprocess); load_digits is the fallback."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            if table.shape == (1797, 65):
                return table
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ArchspecError(
            MISSING, "--data digits needs scikit-learn: pip install scikit-learn (or pip install 'archspec[train]')"
        ) from None
    bunch = load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1)


# --- CIFAR: the official pickles, read without running code ---------------------------------------

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_ALLOWED_GLOBALS = {
    *_RECONSTRUCT,
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
}
# The dtypes an array of a CIFAR file may have (numpy pickles them as dtype('u1', False, True)): numbers only,
# so no object array (a list of references) and no void dtype of a forged size.
_NUMBER_DTYPES = frozenset(
    f"{kind}{size}" for kind, sizes in (("u", "1248"), ("i", "1248"), ("f", "248"), ("b", "1")) for size in sizes
)


class _GuardedArray(np.ndarray):
    """What `_reconstruct` makes for the pickle: an empty array whose state (shape, dtype, bytes), set next by
    the pickle's BUILD, is checked before numpy allocates it: numbers only, the bytes the shape declares, all
    arrays of the file together within DataLimits.pickle_bytes."""

    budget: list[int]  # bytes left for this file's arrays, shared by all of them

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("an array's state is not numpy's")
        shape, dtype, _, raw = state[-4:]
        if not isinstance(dtype, np.dtype) or dtype.str.lstrip("<>|=") not in _NUMBER_DTYPES:
            raise pickle.UnpicklingError(f"an array of {dtype!r}: a CIFAR file holds numbers only")
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 8:
            raise pickle.UnpicklingError(f"an array of shape {shape!r}")
        size = math.prod(shape) * dtype.itemsize  # Python's exact product: numpy's wraps
        if size > self.budget[0]:
            raise pickle.UnpicklingError(
                f"its arrays declare more than {DATA.pickle_bytes:,} bytes (DataLimits.pickle_bytes)"
            )
        if not isinstance(raw, bytes) or len(raw) != size:
            raise pickle.UnpicklingError(
                f"an array declares {size:,} bytes and holds "
                f"{len(raw) if isinstance(raw, bytes) else type(raw).__name__}"
            )
        self.budget[0] -= size
        super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, bytes, numbers and numpy arrays; refuses every other global, so
    the pickle's opcodes cannot call os.system or import anything. numpy's `_reconstruct` would allocate
    whatever shape the pickle names (500,000 images from 1 MB of pickle); here it makes an empty
    _GuardedArray, and the array's real contents come only from bytes the file holds."""

    def __init__(self, file: Any, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.budget = [DATA.pickle_bytes]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _RECONSTRUCT:
            return self._reconstruct
        if (module, name) == ("numpy", "dtype"):
            return _dtype
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused global {module}.{name}: a CIFAR file holds only arrays, lists and strings"
        )

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"an array of type {subtype!r}: a CIFAR file holds plain numpy arrays")
        array = np.ndarray.__new__(_GuardedArray, (0,), np.uint8)
        array.budget = self.budget
        return array


def _dtype(name: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(name, str) or name not in _NUMBER_DTYPES:
        raise pickle.UnpicklingError(f"a dtype of {name!r}: a CIFAR file holds numbers only")
    return np.dtype(name)


def _unpickle(path: Path, kind: str) -> dict[str, Any]:
    if not path.is_file():
        raise ArchspecError(MISSING, f"{path} is missing. {_where(kind, path.parent)}")
    if path.stat().st_size > DATA.pickle_bytes:
        raise ArchspecError(
            CORRUPT,
            f"{path} holds {path.stat().st_size:,} bytes, more than the {DATA.pickle_bytes:,} a "
            f"{kind} file may (DataLimits.pickle_bytes; the largest official one is 155 MB); replace it "
            "with the file from the official archive",
        )
    try:
        with open(path, "rb") as file:
            data = _RestrictedUnpickler(file, encoding="bytes").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        UnicodeDecodeError,
        MemoryError,
    ) as exc:
        raise ArchspecError(
            CORRUPT,
            f"{path} is not a {kind} batch file in the official python format ({exc}); "
            f"replace it with the file from the official archive",
        ) from None
    except OSError as exc:
        raise ArchspecError(CORRUPT, f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ArchspecError(
            CORRUPT,
            f"{path} holds a {type(data).__name__}, not the dictionary of a {kind} batch file; "
            f"replace it with the file from the official archive",
        )
    return {
        k.decode("latin1") if isinstance(k, bytes) else str(k): np.asarray(v) if isinstance(v, np.ndarray) else v
        for k, v in data.items()
    }


def _cifar_batch(path: Path, kind: str, label_key: str, classes: int) -> Split:
    batch = _unpickle(path, kind)
    images, labels = batch.get("data"), batch.get(label_key)
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3 * 32 * 32
    ):
        raise ArchspecError(
            CORRUPT,
            f"{path}: 'data' must be a uint8 array of shape (N, 3072) in a {kind} batch file; "
            "replace it with the file from the official archive",
        )
    if (
        not isinstance(labels, list)
        or len(labels) != images.shape[0]
        or not all(isinstance(v, int) and 0 <= v < classes for v in labels)
    ):
        raise ArchspecError(
            CORRUPT,
            f"{path}: {label_key!r} must be a list of {images.shape[0]} labels in 0..{classes - 1}; "
            "replace it with the file from the official archive",
        )
    return Split(torch.from_numpy(images.reshape(-1, 3, 32, 32).copy()), torch.tensor(labels, dtype=torch.long))


def _names(path: Path, kind: str, key: str, count: int) -> tuple[str, ...]:
    if not path.is_file():
        return tuple(str(i) for i in range(count))
    names = _unpickle(path, kind).get(key)
    if not isinstance(names, list) or len(names) != count:
        raise ArchspecError(
            CORRUPT, f"{path}: {key!r} must list {count} class names; replace it with the official file"
        )
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def _concat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))


def _cifar10(path: Path) -> tuple[Split, Split, tuple[str, ...]]:
    missing = [n for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"] if not (path / n).is_file()]
    if missing:
        raise ArchspecError(MISSING, f"{path}/ lacks {', '.join(missing)}. {_where('cifar10', path)}")
    train = _concat([_cifar_batch(path / f"data_batch_{i}", "cifar10", "labels", 10) for i in range(1, 6)])
    test = _cifar_batch(path / "test_batch", "cifar10", "labels", 10)
    return train, test, _names(path / "batches.meta", "cifar10", "label_names", 10)


def _cifar100(path: Path) -> tuple[Split, Split, tuple[str, ...]]:
    missing = [n for n in ("train", "test") if not (path / n).is_file()]
    if missing:
        raise ArchspecError(MISSING, f"{path}/ lacks {', '.join(missing)}. {_where('cifar100', path)}")
    train = _cifar_batch(path / "train", "cifar100", "fine_labels", 100)
    test = _cifar_batch(path / "test", "cifar100", "fine_labels", 100)
    return train, test, _names(path / "meta", "cifar100", "fine_label_names", 100)


# --- MNIST idx files ------------------------------------------------------------------------------


def _idx(folder: Path, name: str, kind: str, images: bool) -> torch.Tensor:
    raw, packed = folder / name, folder / f"{name}.gz"
    path = raw if raw.is_file() else packed
    if not path.is_file():
        raise ArchspecError(MISSING, f"{folder}/ lacks {name} (or {name}.gz). {_where(kind, folder)}")
    too_large = ArchspecError(
        CORRUPT,
        f"{path} holds more than {IDX_MAX_BYTES / 2**30:g} GiB{' once decompressed' if path.suffix == '.gz' else ''}; "
        "an idx file of images this size is not MNIST's (its largest file is 47 MB): replace it "
        "with the file as distributed",
    )
    try:
        if path.suffix == ".gz":
            # Read at most the cap (plus one byte to tell): a small gzip bomb must not fill the memory.
            with gzip.open(path, "rb") as file:
                data = file.read(IDX_MAX_BYTES + 1)
        elif path.stat().st_size > IDX_MAX_BYTES:
            raise too_large
        else:
            data = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchspecError(CORRUPT, f"cannot read {path}: {exc}; replace it with the file as distributed") from None
    if len(data) > IDX_MAX_BYTES:
        raise too_large
    dims = 3 if images else 1
    magic = 0x0800 | dims
    if len(data) < 4 + 4 * dims or struct.unpack(">I", data[:4])[0] != magic:
        raise ArchspecError(
            CORRUPT,
            f"{path} is not an idx file of {'images' if images else 'labels'} "
            f"(magic number {magic:#010x} expected); replace it with the file as distributed",
        )
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    if 0 in shape or (images and shape[1] * shape[2] > DATA.image_pixels):
        raise ArchspecError(
            CORRUPT,
            f"{path}: its header declares {'x'.join(map(str, shape))} "
            f"{'images' if images else 'labels'}; an idx file needs at least one, of at least 1x1 "
            f"(and at most {DATA.image_pixels:,}) pixels: replace it with the file as distributed",
        )
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != math.prod(shape):  # Python's exact product: numpy's int64 one wraps and can be forged
        raise ArchspecError(
            CORRUPT,
            f"{path} is truncated or padded: its header says {'x'.join(map(str, shape))} values, "
            f"it holds {body.size}; replace it with the file as distributed",
        )
    return torch.from_numpy(body.reshape(shape).copy())


def _mnist(path: Path, kind: str) -> tuple[Split, Split, tuple[str, ...]]:
    splits = []
    for prefix in ("train", "t10k"):
        images = _idx(path, f"{prefix}-images-idx3-ubyte", kind, True)
        labels = _idx(path, f"{prefix}-labels-idx1-ubyte", kind, False).long()
        if len(images) != len(labels) or (len(labels) and int(labels.max()) > 9):
            raise ArchspecError(
                CORRUPT,
                f"{path}/{prefix}-*: {len(images)} images but {len(labels)} labels "
                "(or a label above 9); replace the files with the ones distributed",
            )
        splits.append(Split(images.unsqueeze(1), labels))
    classes = FASHION_CLASSES if kind == "fashion-mnist" else tuple(str(i) for i in range(10))
    return splits[0], splits[1], classes


# --- text: a file of bytes, next-token windows --------------------------------------------------------


def _text(path: Path, seq_len: int | None) -> tuple[Split, Split]:
    """The file's bytes cut into windows of `seq_len` inputs and their `seq_len` next tokens. The last tenth of
    the file (at least one window) is the test split, cut end to end (the last target of one window is the first
    input of the next); the training windows overlap (TEXT_TRAIN_OVERLAP) and never reach into the test tail."""
    if seq_len is None or seq_len < 1:
        raise ArchspecError(
            "AS913",
            f"--data text:{path} trains next-token prediction: the spec must take token ids "
            "[seq_len] (a language model, e.g. specs/gpt2.yaml)",
        )
    raw = _read_text(path)
    held = max(seq_len + 1, round(len(raw) * TEXT_TEST_FRACTION))
    if len(raw) < held + seq_len + 1:
        raise ArchspecError(
            CORRUPT,
            f"{path} holds {len(raw):,} bytes: too short for windows of {seq_len} tokens with "
            f"a held-out tail; give at least {2 * (seq_len + 1):,} bytes of text (or a smaller seq_len)",
        )
    tokens = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    stride = max(1, seq_len // TEXT_TRAIN_OVERLAP)
    return _windows(tokens[: len(raw) - held], seq_len, stride), _windows(tokens[len(raw) - held :], seq_len, seq_len)


def _windows(tokens: torch.Tensor, seq_len: int, stride: int) -> Split:
    """Windows of `seq_len` inputs starting every `stride` tokens, each with its `seq_len` next tokens."""
    n = (len(tokens) - 1 - seq_len) // stride + 1
    starts = torch.arange(n)[:, None] * stride + torch.arange(seq_len)[None, :]
    return Split(tokens[starts].clone(), tokens[starts + 1].clone())


def _read_text(path: Path) -> bytes:
    """The bytes of a regular file of UTF-8 text, at most TEXT_MAX_BYTES. Opened without blocking and
    checked on the open file, so a FIFO, a device or a folder is refused rather than read forever (and a
    path swapped after the check is still the file read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ArchspecError(MISSING, f"no text file at {path}; --data text:PATH takes a UTF-8 text file") from None
    except (OSError, ValueError) as exc:
        raise ArchspecError(CORRUPT, f"cannot open {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or special file"
            raise ArchspecError(
                CORRUPT, f"{path} is {what}, not a regular file; --data text:PATH takes a UTF-8 text file"
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            raw = file.read(TEXT_MAX_BYTES + 1)
    except OSError as exc:
        raise ArchspecError(CORRUPT, f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > TEXT_MAX_BYTES:
        raise ArchspecError(
            CORRUPT,
            f"{path} holds more than {TEXT_MAX_BYTES / 2**20:g} MiB, the most a text dataset may "
            "hold (it is kept in memory); cut it, or train on a part",
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchspecError(
            CORRUPT,
            f"{path} is not UTF-8 text: byte {exc.start:,} ({raw[exc.start]:#04x}) {exc.reason}; "
            "give a UTF-8 text file",
        ) from None
    return raw


# --- image folders ----------------------------------------------------------------------------------


def _image_folder(
    path: Path, size: tuple[int, int] | None, stream: bool = False, bad_images: str = "fail"
) -> tuple[Any, Any, tuple[str, ...]]:
    """The class folders (at most DataLimits.classes, counted before any list of them is kept) and each
    split's images: listed (`stream`) or decoded into memory, through the same bounded decoder."""
    from archspec.train import datasets

    train_dir = path / "train"
    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise ArchspecError(
            MISSING, f"{path}/ is not an image folder: it needs train/ and test/ (or val/). {_where('folder', path)}"
        )
    classes = tuple(sorted(_class_folders(train_dir)))
    if not classes:
        raise ArchspecError(MISSING, f"{train_dir}/ has no class subfolders. {_where('folder', path)}")
    extra = sorted(set(_class_folders(test_dir)) - set(classes))
    if extra:
        raise ArchspecError(
            CORRUPT,
            f"{test_dir}/ has classes that {train_dir}/ lacks: {', '.join(extra[:5])}"
            f"{f' and {len(extra) - 5:,} more' if len(extra) > 5 else ''}; use the same class folders in both",
        )
    splits: list[Any] = []
    for folder in (train_dir, test_dir):
        files = datasets.list_images(folder, classes, size)
        if stream:
            splits.append(files)
            continue
        images, labels, bad = datasets.read_all(files, bad_images)
        if bad:
            print(
                f"note: skipped {len(bad):,} unreadable image{'s' * (len(bad) != 1)} of {folder}/ (--bad-images skip); "
                f"the first: {bad[0].path} {bad[0].reason}",
                file=sys.stderr,
            )
        splits.append(Split(images, labels))
    return splits[0], splits[1], classes


def _class_folders(folder: Path) -> list[str]:
    """The subfolder names of `folder`, refused past DataLimits.classes before more are collected."""
    names: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    names.append(entry.name)
                    if len(names) > DATA.classes:
                        raise ArchspecError(
                            CORRUPT,
                            f"{folder}/ has more than {DATA.classes:,} class folders, the most "
                            "an image folder may (DataLimits.classes, docs/limits.md)",
                        )
    except OSError as exc:
        raise ArchspecError(CORRUPT, f"cannot list {folder}/: {exc.strerror or exc}") from None
    return names


def prepare(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) on the device -> float in [0, 1] with the spec's (C, H, W): resized (bilinear,
    antialiased) and converted between gray and RGB where they differ."""
    x = images.float().div_(255)
    channels, height, width = shape
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif x.shape[1] == 3 and channels == 1:
            x = gray(x)[:, :1]
        else:
            raise ArchspecError(
                "AS913",
                f"the data has {x.shape[1]} channels and the spec takes {channels}; "
                "use a spec with 1 or 3 input channels",
            )
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
    return x


RESIZE_ONCE_BYTES = 1 << 29  # resized splits up to 512 MiB are resized once, larger ones batch by batch


def fit(split: Split, shape: tuple[int, int, int]) -> Split:
    """`split` resized once to the spec's (H, W), still uint8 (channels stay), where the result is small
    (digits to 32x32: 1.5 MB): the per-batch resize of `prepare` then has nothing left to do. Larger
    results (CIFAR at 224x224: 7.5 GB) keep their size and are resized batch by batch. A streamed split
    (datasets.ImageFiles) is decoded at the spec's size already and is returned as it is."""
    if not isinstance(split, Split):
        return split
    n, channels, height, width = split.images.shape
    if (height, width) == shape[1:] or n * channels * shape[1] * shape[2] > RESIZE_ONCE_BYTES:
        return split
    chunks = []
    for start in range(0, n, 1024):
        x = split.images[start : start + 1024].float().div_(255)
        x = F.interpolate(x, size=shape[1:], mode="bilinear", antialias=True, align_corners=False)
        chunks.append(x.mul_(255).round_().clamp_(0, 255).to(torch.uint8))
    return Split(torch.cat(chunks), split.labels)


def gray(x: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) -> luminance (ITU-R 601, as PIL and torchvision) repeated over 3 channels."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def describe(dataset: Dataset) -> str:
    if dataset.text:
        width = int(dataset.train.images.shape[1])
        return (
            f"{dataset.name}: {len(dataset.train):,} train / {len(dataset.test):,} test windows of {width} tokens "
            f"(bytes: a vocabulary of {len(dataset.classes)})"
        )
    if not isinstance(dataset.train, Split):  # streamed: the size is the one every image is resized to
        size = dataset.train.size
        return (
            f"{dataset.name}: {len(dataset.train):,} train / {len(dataset.test):,} test images read at "
            f"{'3x' + 'x'.join(map(str, size)) if size else 'their own size'}, {len(dataset.classes)} classes"
        )
    shape = "x".join(map(str, dataset.train.images.shape[1:]))
    return (
        f"{dataset.name}: {len(dataset.train):,} train / {len(dataset.test):,} test images of {shape}, "
        f"{len(dataset.classes)} classes"
    )
