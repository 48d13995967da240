"""What a run folder shows besides checkpoints: metrics.csv (one row per epoch, continued by --resume
without duplicates) and TensorBoard event files where tensorboard is installed, nothing where it is not;
and the loop and the report no longer import each other."""

import ast
import csv
import importlib.util
from pathlib import Path
import sys

import pytest
import torch

from archspec import cli
from archspec.train.report import METRICS_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SEED_CNN = str(ROOT / "specs/seed_cnn.yaml")
ARGS = ["--data", "digits", "--set", "resolution=16", "--batch-size", "128", "--threads", "1", "--seed", "1"]


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def train(folder: Path, epochs: int, *extra: str) -> None:
    assert cli.main(["train", SEED_CNN, *ARGS, "--epochs", str(epochs), "--out", str(folder), *extra]) == 0


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == METRICS_COLUMNS
        return list(reader)


def test_metrics_csv_has_a_row_per_epoch_and_resume_continues_it(tmp_path: Path, capsys) -> None:
    import json

    train(tmp_path / "r", 1)
    first = rows(tmp_path / "r")
    train(tmp_path / "r", 3, "--resume")
    capsys.readouterr()
    table = rows(tmp_path / "r")
    assert [r["epoch"] for r in table] == ["1", "2", "3"]  # appended, the resumed epoch not repeated
    assert table[0] == first[0]
    history = json.loads((tmp_path / "r/state.json").read_text())["history"]
    steps = 1437 // 128  # digits' training images, whole batches
    for row, m in zip(table, history):
        assert int(row["step"]) == m["epoch"] * steps
        for column, key in (
            ("train_loss", "train_loss"),
            ("train_acc", "train_acc"),
            ("val_loss", "test_loss"),
            ("val_acc", "test_acc"),
            ("lr", "lr"),
            ("seconds", "seconds"),
        ):
            assert float(row[column]) == pytest.approx(m[key], rel=1e-3, abs=1e-3), column
        assert float(row["images_per_s"]) > 0


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="tensorboard is not installed (pip install -e '.[tensorboard]')",
)
def test_tensorboard_events_per_epoch_when_installed(tmp_path: Path, capsys) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tmp_path / "r", 1)
    train(tmp_path / "r", 2, "--resume")
    capsys.readouterr()
    assert len(list((tmp_path / "r").glob("events.out.tfevents.*"))) == 2  # one file per session
    events = EventAccumulator(str(tmp_path / "r"))
    events.Reload()  # reads every events file of the folder, in order
    scalars = events.Tags()["scalars"]
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= set(scalars)
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2]
    assert events.Scalars("accuracy/val")[-1].value == pytest.approx(
        float(rows(tmp_path / "r")[-1]["val_acc"]), rel=1e-4
    )


def test_no_tensorboard_means_no_events_and_no_error(tmp_path: Path, capsys, monkeypatch) -> None:
    # Whether or not tensorboard is installed here, make its import fail as it does where it is missing:
    # a None entry in sys.modules is what Python's import system treats as "not importable".
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    for name in [n for n in sys.modules if n.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    train(tmp_path / "r", 1)
    _, err = capsys.readouterr()
    assert "warning" not in err and "error" not in err and "Traceback" not in err
    assert not list((tmp_path / "r").glob("events.out.tfevents.*"))
    assert [r["epoch"] for r in rows(tmp_path / "r")] == ["1"]


def test_loop_and_report_do_not_import_each_other() -> None:
    def imported(module: str) -> set[str]:
        tree = ast.parse((ROOT / "archspec/train" / f"{module}.py").read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return names

    assert "archspec.train.report" in imported("loop")  # the loop prints through the report ...
    assert "archspec.train.loop" not in imported("report")  # ... which never reaches back, not even for types


def test_a_session_resumed_within_the_same_second_names_its_events_after_the_last(tmp_path: Path) -> None:
    # TensorBoard orders event files by name, which starts with the second they were made; the uid after the
    # pid is compared as text ("10" < "9"), so two writers of one second can be read in the wrong order.
    import time

    from archspec.train.report import _after_earlier_events

    now = int(time.time())
    (tmp_path / f"events.out.tfevents.{now}.host.example.1.9").write_bytes(b"")
    _after_earlier_events(tmp_path)
    assert int(time.time()) > now
    future = tmp_path / "future"
    future.mkdir()
    (future / "events.out.tfevents.9999999999.host.1.0").write_bytes(b"")  # planted or skewed: not waited for
    before = time.time()
    _after_earlier_events(future)
    assert time.time() - before < 1  # returned at once, not at the end of the second (or in 2286)
