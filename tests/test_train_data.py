"""Datasets from their official on-disk formats, written small by the tests; bad folders and corrupt
files give a located error that says what to do (code, path), on the command line without a traceback."""

import gzip
from pathlib import Path
import pickle
import struct

import numpy as np
import pytest
import torch

from archspec import cli
from archspec.errors import ArchspecError
from archspec.train import data

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs/lenet5.yaml")


def cifar_batch(n: int, classes: int, label_key: bytes, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"test batch",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official files are protocol-2 pickles


def make_cifar10(folder: Path, n: int = 6) -> dict[str, dict]:
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch(n, 10, b"labels", i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n, 10, b"labels", 9)
    for name, batch in batches.items():
        write_pickle(folder / name, batch)
    write_pickle(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    return batches


def write_idx(path: Path, array: np.ndarray, packed: bool) -> None:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if packed else raw)


def make_mnist(folder: Path, packed: bool) -> np.ndarray:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    suffix = ".gz" if packed else ""
    for prefix, count in (("train", 5), ("t10k", 3)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images[:count], packed)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(count) % 10, packed)
    return images


def error(text: str) -> ArchspecError:
    with pytest.raises(ArchspecError) as info:
        data.load(text, (32, 32))
    return info.value


def test_digits_is_a_fixed_split_of_sklearns_images() -> None:
    # The oracle is scikit-learn's own file, parsed here with the csv module (importing sklearn costs seconds).
    import csv
    import importlib.util

    folder = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    with gzip.open(folder / "datasets/data/digits.csv.gz", "rt") as file:
        rows = [[int(float(v)) for v in row] for row in csv.reader(file)]
    assert len(rows) == 1797
    pixels = {tuple(round(v * 255 / 16) for v in row[:64]): row[64] for row in rows}
    ds = data.load("digits")
    assert (len(ds.train), len(ds.test), ds.train.images.shape[1:]) == (1437, 360, (1, 8, 8))
    assert ds.train.images.dtype == torch.uint8 and int(ds.train.images.max()) == 255
    for split in (ds.train, ds.test):  # every image is one of scikit-learn's, with its label
        for img, label in zip(split.images, split.labels):
            assert pixels[tuple(img.flatten().tolist())] == int(label)
    seen = {tuple(img.flatten().tolist()) for split in (ds.train, ds.test) for img in split.images}
    assert len(seen) == len(set(pixels))  # and all of them are used
    assert torch.equal(data.load("digits").test.labels, ds.test.labels)


def test_cifar10_reads_the_official_pickles(tmp_path: Path) -> None:
    batches = make_cifar10(tmp_path / "cifar-10-batches-py")
    for text in (f"cifar10:{tmp_path / 'cifar-10-batches-py'}", str(tmp_path / "cifar-10-batches-py")):
        ds = data.load(text)
        assert ds.kind == "cifar10" and (len(ds.train), len(ds.test)) == (30, 6) and ds.classes[3] == "c3"
    first = batches["data_batch_1"]
    assert torch.equal(ds.train.images[0], torch.from_numpy(first[b"data"][0].reshape(3, 32, 32)))
    assert ds.train.labels[:6].tolist() == first[b"labels"]
    assert ds.test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = cifar_batch(7, 100, b"fine_labels", 1), cifar_batch(3, 100, b"fine_labels", 2)
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    ds = data.load(str(folder))
    assert ds.kind == "cifar100" and len(ds.classes) == 100 and ds.train.labels.tolist() == train[b"fine_labels"]


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    folder = tmp_path / "c10"
    make_cifar10(folder)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    e = error(f"cifar10:{folder}")
    assert e.code == "AS912" and "data_batch_3" in e.message and "refused global" in e.message
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "labels", "shape", "not_a_dict"])
def test_corrupt_cifar_files(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "c10"
    batches = make_cifar10(folder)
    target = folder / "test_batch"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    elif damage == "labels":
        write_pickle(target, {**batches["test_batch"], b"labels": [11] * 6})
    elif damage == "shape":
        write_pickle(target, {**batches["test_batch"], b"data": np.zeros((6, 100), np.uint8)})
    else:
        write_pickle(target, [1, 2, 3])
    e = error(f"cifar10:{folder}")
    assert e.code == "AS912" and str(target) in e.message and "official" in e.message


def test_missing_cifar_says_what_goes_where(tmp_path: Path) -> None:
    e = error(f"cifar10:{tmp_path / 'nowhere'}")
    assert e.code == "AS911" and "cifar-10-python.tar.gz" in e.message and "data_batch_1" in e.message
    folder = tmp_path / "partial"
    make_cifar10(folder)
    (folder / "data_batch_4").unlink()
    e = error(f"cifar10:{folder}")
    assert e.code == "AS911" and "lacks data_batch_4" in e.message


@pytest.mark.parametrize("packed", [False, True])
def test_mnist_idx_files(tmp_path: Path, packed: bool) -> None:
    images = make_mnist(tmp_path / "m", packed)
    ds = data.load(f"fashion-mnist:{tmp_path / 'm'}")
    assert (len(ds.train), len(ds.test)) == (5, 3) and ds.train.images.shape[1:] == (1, 28, 28)
    assert torch.equal(ds.train.images[:, 0], torch.from_numpy(images)) and ds.classes[0] == "t-shirt"
    assert data.load(str(tmp_path / "m")).kind == "mnist"


def test_corrupt_idx_files(tmp_path: Path) -> None:
    make_mnist(tmp_path / "m", packed=False)
    labels = tmp_path / "m/t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    e = error(f"mnist:{tmp_path / 'm'}")
    assert e.code == "AS912" and "truncated" in e.message and str(labels) in e.message
    (tmp_path / "m/train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(8))
    e = error(f"mnist:{tmp_path / 'm'}")
    assert e.code == "AS912" and "magic" in e.message
    (tmp_path / "m/train-images-idx3-ubyte").unlink()
    (tmp_path / "m/train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    assert error(f"mnist:{tmp_path / 'm'}").code == "AS912"


def test_hostile_idx_headers_and_gzip_bombs(tmp_path: Path, monkeypatch) -> None:
    """A header whose dimensions multiply past 2**64 wrapped numpy's product to the body's size (0) and
    crashed in reshape; a gzip that inflates beyond the cap is refused after reading the cap, not all of it."""
    make_mnist(tmp_path / "m", packed=False)
    images = tmp_path / "m/train-images-idx3-ubyte"
    images.write_bytes(struct.pack(">I3I", 0x0803, 2**22, 2**22, 2**20))  # 2**64 values
    e = error(f"mnist:{tmp_path / 'm'}")
    assert e.code == "AS912" and "4194304x4194304x1048576" in e.message
    images.unlink()
    with gzip.open(tmp_path / "m/train-images-idx3-ubyte.gz", "wb") as file:
        file.write(struct.pack(">I3I", 0x0803, 1000, 28, 28) + bytes(1000 * 28 * 28))
    monkeypatch.setattr(data, "IDX_MAX_BYTES", 100_000)
    e = error(f"mnist:{tmp_path / 'm'}")
    assert e.code == "AS912" and "once decompressed" in e.message
    (tmp_path / "m/train-images-idx3-ubyte.gz").unlink()
    images.write_bytes(struct.pack(">I3I", 0x0803, 1000, 28, 28) + bytes(1000 * 28 * 28))
    assert "holds more than" in error(f"mnist:{tmp_path / 'm'}").message


def make_image_folder(root: Path) -> None:
    from PIL import Image

    for split, count in (("train", 3), ("test", 1)):
        for label, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20 + i, 10), color).save(root / split / label / f"{i}.png")


def test_image_folder_resizes_to_the_spec_input(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "pets")
    ds = data.load(f"folder:{tmp_path / 'pets'}", (12, 16))
    assert (
        ds.classes == ("cat", "dog") and ds.train.images.shape == (6, 3, 12, 16) and ds.test.labels.tolist() == [0, 1]
    )
    assert ds.train.images[0, 0].min() == 255 and ds.train.images[0, 2].max() == 0  # red cat
    assert ds.train.images[5, 2].min() == 255  # blue dog


def test_bad_image_folders(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "pets")
    broken = tmp_path / "pets/train/dog/broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    e = error(f"folder:{tmp_path / 'pets'}")
    assert e.code == "AS912" and str(broken) in e.message and "replace or remove" in e.message
    (tmp_path / "flat/cat").mkdir(parents=True)
    e = error(f"folder:{tmp_path / 'flat'}")
    assert e.code == "AS911" and "train/ and test/" in e.message


def test_prepare_resizes_and_adapts_channels() -> None:
    gray8 = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    x = data.prepare(gray8, (3, 32, 32))
    assert x.shape == (2, 3, 32, 32) and torch.allclose(x, torch.ones_like(x))
    rgb = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    rgb[:, 1] = 255
    assert torch.allclose(data.prepare(rgb, (1, 4, 4)), torch.full((1, 1, 4, 4), 0.587))


@pytest.mark.parametrize(
    "make, arg, code, exit_code, words",
    [
        (None, "nowhere_at_all", "AS911", 2, "neither a dataset"),
        (None, "cifar10:{tmp}/none", "AS911", 2, "cifar-10-batches-py"),
        ("cifar", "cifar10:{tmp}/c10", "AS912", 1, "refused global"),
    ],
)
def test_cli_data_errors_are_one_line_with_exit_codes(
    tmp_path: Path, capsys, make, arg, code, exit_code, words
) -> None:
    if make == "cifar":
        make_cifar10(tmp_path / "c10")
        (tmp_path / "c10/test_batch").write_bytes(pickle.dumps({b"data": print}, protocol=2))
    status = cli.main(
        ["train", LENET, "--data", arg.format(tmp=tmp_path), "--epochs", "1", "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert status == exit_code and f"error: {code}:" in err and words in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
