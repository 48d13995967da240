"""Image folders streamed through DataLoader workers (archspec.train.datasets) and the bounds every dataset
reader keeps (docs/limits.md): what a stream yields is what the in-memory path yields, a run trains the same
weights with 0 or 2 workers, and hostile files (a FIFO named x.png, a DDS under .png, a header declaring a
huge image, forged CIFAR pickles and idx headers, thousands of empty classes) are AS912 naming the file,
never a hang, a traceback or a large allocation. Every file is written small, in tmp_path, by the test."""

from __future__ import annotations

import os
from pathlib import Path
import struct
import zlib

import numpy as np
from PIL import Image
import pytest
import torch

from archspec import cli
from archspec.errors import ArchspecError
from archspec.limits import DataLimits
from archspec.train import data, datasets
from archspec.train.metrics import Tally

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs/lenet5.yaml")


def make_folder(root: Path, per_class: int = 8, test_per_class: int = 3, classes: int = 3) -> Path:
    """Noisy JPEGs and PNGs of different sizes, a colour per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(count):
                array = np.clip(rng.normal(60 + 60 * c, 30, (20 + i, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(array).save(root / split / f"c{c}" / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header declares width x height RGB pixels (decoding it would allocate them)."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def dds_under_png() -> bytes:
    """A DDS header with a pixel format PIL does not implement (it raises NotImplementedError)."""
    header = (
        struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44 + struct.pack("<2I", 32, 4) + b"ZZZZ" + b"\0" * 40
    )
    return b"DDS " + header + b"\0" * 64


def test_a_stream_yields_what_the_in_memory_path_holds(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pets")
    memory = data.load(f"folder:{folder}", (16, 12))
    streamed = data.load(f"folder:{folder}", (16, 12), stream=True)
    assert isinstance(streamed.train, datasets.ImageFiles) and data.fit(streamed.train, (3, 16, 12)) is streamed.train
    assert streamed.classes == memory.classes and len(streamed.train) == len(memory.train) == 24
    assert "read at 3x16x12" in data.describe(streamed)
    batches = [torch.tensor([5, 0, 17]), torch.tensor([23, 9, 1, 2])]
    shape = (3, 16, 12)
    for workers in (0, 2):
        feed = datasets.Feed(streamed.train, shape, torch.device("cpu"), workers=workers)
        assert ("2 decoding workers" if workers else "--workers 0") in feed.describe()
        expected = datasets.Feed(memory.train, shape, torch.device("cpu"))
        assert expected.describe() == "data in memory"
        for (x, y, kept), (x0, y0, _) in zip(feed(batches), expected(batches), strict=True):
            assert torch.equal(x, x0) and torch.equal(y, y0) and kept.tolist() == list(range(len(y)))


def test_training_on_a_folder_is_the_same_with_0_or_2_workers(tmp_path: Path, capsys) -> None:
    folder = make_folder(tmp_path / "pets")
    for workers in (0, 2):
        status = cli.main(
            [
                "train",
                LENET,
                "--data",
                f"folder:{folder}",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--augment",
                "hflip,crop=2",
                "--workers",
                str(workers),
                "--out",
                str(tmp_path / f"w{workers}"),
            ]
        )
        assert status == 0
    err = capsys.readouterr().err
    assert "streamed from files by 2 decoding workers" in err and "streamed from files in this process" in err
    assert (tmp_path / "w0/model.safetensors").read_bytes() == (tmp_path / "w2/model.safetensors").read_bytes()


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("fifo.png", None, "is a FIFO, not a regular file"),
        ("dds.png", dds_under_png(), "NotImplementedError"),
        ("bomb.png", png_declaring(8000, 8000), "declares 8000x8000 pixels"),
        ("text.jpg", b"not an image at all", "not an image PIL can read"),
        ("truncated.png", png_declaring(8, 8)[:40], "not an image PIL can read"),
    ],
    ids=["fifo", "dds", "pixel-bomb", "text", "truncated"],
)
def test_an_unusable_image_is_named_or_skipped(
    tmp_path: Path, capsys, name: str, content: bytes | None, words: str
) -> None:
    folder = make_folder(tmp_path / "pets", per_class=4, test_per_class=1, classes=2)
    bad = folder / "train/c1" / name
    if content is None:
        os.mkfifo(bad)  # opened, it would block the reader forever
    else:
        bad.write_bytes(content)
    with pytest.raises(ArchspecError) as info:
        data.load(f"folder:{folder}", (8, 8))
    assert info.value.code == "AS912" and str(bad) in info.value.message and words in info.value.message
    assert "--bad-images skip" in info.value.message
    streamed = data.load(f"folder:{folder}", (8, 8), stream=True)
    index = [torch.arange(len(streamed.train))]
    with pytest.raises(ArchspecError) as info:
        list(datasets.Feed(streamed.train, (3, 8, 8), torch.device("cpu"), workers=1)(index))
    assert info.value.code == "AS912" and str(bad) in info.value.message and words in info.value.message
    feed = datasets.Feed(streamed.train, (3, 8, 8), torch.device("cpu"), workers=1, bad_images="skip")
    [(x, y, kept)] = list(feed(index))
    assert len(streamed.train) == 9 and x.shape == (8, 3, 8, 8) and len(kept) == 8 and y.tolist() == [0] * 4 + [1] * 4
    assert f"skipped 1 unreadable image of {folder / 'train'}/" in capsys.readouterr().err


def test_skip_through_the_command_line(tmp_path: Path, capsys) -> None:
    folder = make_folder(tmp_path / "pets", per_class=4, test_per_class=2, classes=2)
    (folder / "train/c0/broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    args = ["train", LENET, "--data", f"folder:{folder}", "--epochs", "1", "--batch-size", "3", "--workers", "1"]
    assert cli.main([*args, "--out", str(tmp_path / "fail")]) == 1
    err = capsys.readouterr().err
    assert "error: AS912:" in err and "broken.jpg" in err and "Traceback" not in err
    assert cli.main([*args, "--out", str(tmp_path / "skip"), "--bad-images", "skip"]) == 0
    assert "skipped 1 unreadable image" in capsys.readouterr().err


def test_class_folders_are_counted_before_they_are_kept(tmp_path: Path, monkeypatch) -> None:
    folder = make_folder(tmp_path / "pets", per_class=1, test_per_class=1, classes=2)
    for i in range(5):
        (folder / "train" / f"empty{i}").mkdir()
    monkeypatch.setattr(data, "DATA", DataLimits(classes=6))
    with pytest.raises(ArchspecError) as info:
        data.load(f"folder:{folder}", (8, 8), stream=True)
    assert info.value.code == "AS912" and "more than 6 class folders" in info.value.message


def test_the_confusion_matrix_is_bounded_before_it_is_allocated() -> None:
    assert Tally(10, torch.device("cpu"), confusion=True).confusion is not None
    # 20,002 classes would be 3.2 GB of int64 (the audit's 20,000 empty class folders); no matrix is made
    assert Tally(20_002, torch.device("cpu"), confusion=True).confusion is None


def test_images_per_split_are_bounded_while_listing(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pets", per_class=4, test_per_class=1, classes=2)
    with pytest.raises(ArchspecError) as info:
        datasets.list_images(folder / "train", ("c0", "c1"), (8, 8), DataLimits(images=6))
    assert info.value.code == "AS912" and "more than 6 images" in info.value.message


def test_image_bytes_are_bounded_from_the_stat(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(datasets.BadImage, match="more than the 10 an image may"):
        datasets.decode(str(path), (4, 4), DataLimits(image_bytes=10))


# --- CIFAR pickles and idx headers ----------------------------------------------------------------------------


def forged_cifar(tmp_path: Path, data_opcodes: bytes) -> Path:
    """A cifar-10-batches-py folder whose test_batch is a hand-written protocol-2 pickle: {'data': what
    `data_opcodes` build, 'labels': 500,000 references to one memoized 0} (about 1 MB, as the audit's was)."""
    from tests.test_train_data import make_cifar10

    folder = tmp_path / "c10"
    make_cifar10(folder)
    labels = b"X\x06\x00\x00\x00labels](K\x00q\x00" + b"h\x00" * 499_999 + b"e"
    (folder / "test_batch").write_bytes(b"\x80\x02}(X\x04\x00\x00\x00data" + data_opcodes + labels + b"u.")
    return folder


def reconstruct(shape: tuple[int, ...], build: bytes = b"") -> bytes:
    """numpy.core.multiarray._reconstruct(numpy.ndarray, shape, b'B') [then BUILD with the state `build` pushes]."""
    shape_ops = b"(" + b"".join(b"J" + struct.pack("<i", n) for n in shape) + b"t"
    return b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + shape_ops + b"C\x01B\x87R" + build


def test_a_pickle_declaring_500000_images_allocates_nothing(tmp_path: Path) -> None:
    import resource

    folder = forged_cifar(tmp_path, reconstruct((500_000, 3072)))
    assert (folder / "test_batch").stat().st_size < 1_100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArchspecError) as info:
        data.load(f"cifar10:{folder}")
    assert info.value.code == "AS912" and "test_batch" in info.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far from 1.5 GB


@pytest.mark.parametrize(
    "dtype_ops, words",
    [
        (b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R", "a dtype of 'O8'"),  # an object array: references
        (b"cnumpy\ndtype\nX\x0b\x00\x00\x00V1000000000\x89\x88\x87R", "a dtype of 'V1000000000'"),
    ],
    ids=["object", "void"],
)
def test_pickled_arrays_of_objects_or_forged_sizes_are_refused(tmp_path: Path, dtype_ops: bytes, words: str) -> None:
    state = b"(K\x01(J\x01\x00\x00\x00t" + dtype_ops + b"\x89C\x00t" + b"b"
    folder = forged_cifar(tmp_path, reconstruct((0,), state))
    with pytest.raises(ArchspecError) as info:
        data.load(f"cifar10:{folder}")
    assert info.value.code == "AS912" and words in info.value.message


def test_a_pickled_array_must_hold_the_bytes_it_declares(tmp_path: Path) -> None:
    dtype = b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R"
    state = (
        b"(K\x01(J\x00\x00\x01\x00J\x00\x0c\x00\x00t" + dtype + b"\x89C\x03abct" + b"b"
    )  # 65,536 x 3072 from 3 bytes
    folder = forged_cifar(tmp_path, reconstruct((0,), state))
    with pytest.raises(ArchspecError) as info:
        data.load(f"cifar10:{folder}")
    assert info.value.code == "AS912" and "declares 201,326,592 bytes and holds 3" in info.value.message


@pytest.mark.parametrize("shape", [(0, 28, 28), (4, 0, 0), (1, 70_000, 70_000)])
def test_idx_headers_with_no_images_or_huge_ones(tmp_path: Path, shape: tuple[int, ...]) -> None:
    from tests.test_train_data import make_mnist

    make_mnist(tmp_path / "m", packed=False)
    path = tmp_path / "m/train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x0803) + struct.pack(">3I", *shape) + b"\0" * 16)
    with pytest.raises(ArchspecError) as info:
        data.load(f"mnist:{tmp_path / 'm'}")
    assert (
        info.value.code == "AS912"
        and str(path) in info.value.message
        and "x".join(map(str, shape)) in info.value.message
    )


def test_two_gloo_processes_stream_their_shares_and_match_one_process(tmp_path: Path, capfd) -> None:
    from safetensors.torch import load_file

    folder = make_folder(tmp_path / "pets", per_class=8, test_per_class=2, classes=2)
    args = [
        "train",
        LENET,
        "--data",
        f"folder:{folder}",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--augment",
        "hflip,crop=2",
        "--threads",
        "1",
        "--workers",
        "1",
    ]
    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "two"), "--nproc", "2"]) == 0
    assert "2 processes" in capfd.readouterr().err
    one, two = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=2e-5, msg=name)


def test_two_processes_agree_to_skip_a_batch_one_of_them_lost(tmp_path: Path) -> None:
    """With --bad-images skip, a process whose share of a batch was all unreadable skips the step, and so must
    the other (which would otherwise wait for its gradients forever). Run in a subprocess with a timeout, so a
    hang fails the test instead of stalling the suite."""
    import subprocess
    import sys

    folder = make_folder(tmp_path / "pets", per_class=2, test_per_class=1, classes=2)
    (folder / "train/c0/bad.png").write_bytes(b"not an image")  # 5 images, batch 2: one share is just this file
    cmd = [
        sys.executable,
        "-m",
        "archspec",
        "train",
        LENET,
        "--data",
        f"folder:{folder}",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--nproc",
        "2",
        "--workers",
        "0",
        "--threads",
        "1",
        "--bad-images",
        "skip",
        "--out",
        str(tmp_path / "run"),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "bad.png" in done.stderr and (tmp_path / "run/model.safetensors").is_file()


def test_a_worker_that_dies_is_an_error_not_a_traceback(tmp_path: Path, monkeypatch) -> None:
    import signal

    folder = make_folder(tmp_path / "pets", per_class=2, test_per_class=1, classes=2)
    streamed = data.load(f"folder:{folder}", (8, 8), stream=True)
    # The kernel's OOM killer cannot be summoned here: the worker kills itself as it would be killed.
    monkeypatch.setattr(datasets, "decode", lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ArchspecError) as info:
        list(datasets.Feed(streamed.train, (3, 8, 8), torch.device("cpu"), workers=1)([torch.arange(4)]))
    assert (
        info.value.code == "AS917"
        and "decoding worker failed" in info.value.message
        and "--workers 0" in info.value.message
    )


def test_a_pass_starts_decoding_when_it_is_asked_for_not_at_its_first_batch(tmp_path: Path) -> None:
    # The loop asks for the first epoch's pass before it makes the optimizer (which imports torch._dynamo),
    # so the workers must be running, and decoding, once feed(batches) returns.
    import multiprocessing

    folder = make_folder(tmp_path / "pets", per_class=4, test_per_class=1, classes=2)
    streamed = data.load(f"folder:{folder}", (8, 8), stream=True)
    feed = datasets.Feed(streamed.train, (3, 8, 8), torch.device("cpu"), workers=2, batch=4)
    before = set(multiprocessing.active_children())
    stream = feed([torch.arange(4), torch.arange(4, 8)])
    started = set(multiprocessing.active_children()) - before
    assert len(started) == 2  # nothing consumed yet
    assert [len(y) for _, y, _ in stream] == [4, 4]


def test_prefetch_is_bounded_in_bytes_not_in_batches() -> None:
    # 32 MiB of decoded uint8 batches over the pool, between torch's default (2) and 64 batches per worker
    assert datasets.prefetch_depth(64, (1, 32, 32), 1) == datasets.MAX_PREFETCH
    assert datasets.prefetch_depth(64, (3, 32, 32), 2) == datasets.MAX_PREFETCH  # 24 MiB of batches in all
    assert datasets.prefetch_depth(16, (3, 224, 224), 2) == datasets.PREFETCH_BYTES // (16 * 3 * 224 * 224 * 2) == 6
    assert datasets.prefetch_depth(64, (3, 224, 224), 2) == 2
    assert datasets.prefetch_depth(256, (3, 518, 518), 8) == 2
    for batch, side, workers in ((1, 8, 1), (64, 96, 3), (512, 384, 8)):
        depth = datasets.prefetch_depth(batch, (3, side, side), workers)
        assert depth == 2 or depth * batch * 3 * side * side * workers <= datasets.PREFETCH_BYTES


def test_default_workers_are_one_per_usable_core_shared_among_processes(monkeypatch) -> None:
    for cores, processes, expected in ((2, 1, 2), (2, 2, 1), (16, 1, 8), (16, 4, 4), (3, 4, 0)):
        monkeypatch.setattr(datasets, "cpus", lambda cores=cores: cores)
        assert datasets.default_workers(processes) == expected


def test_eval_bounds_workers_before_it_starts_any(tmp_path: Path, capsys) -> None:
    # eval took --workers unchecked: -1 was DataLoader's ValueError, 99999999999 tried to start that many
    folder = make_folder(tmp_path / "pets", per_class=2, test_per_class=1, classes=2)
    for workers in ("-1", "65", "99999999999"):
        code = cli.main(
            ["eval", LENET, "--weights", str(tmp_path / "none"), "--data", f"folder:{folder}", "--workers", workers]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"AS913: --workers {workers}: give 0 to 64" in err and "Traceback" not in err
    with pytest.raises(ArchspecError, match="--workers 65"):
        datasets.Feed(
            data.load(f"folder:{folder}", (8, 8), stream=True).train, (3, 8, 8), torch.device("cpu"), workers=65
        )
