"""archspec train / eval / compare end to end on digits (8x8 images resized to the specs' 32x32):
a real run that learns, eval agreeing with it, resume after a SIGKILL giving the same weights as an
uninterrupted run, the comparison table and curves, and clear errors for bad options and checkpoints."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file
import torch

from archspec import cli
from archspec.train import TrainOptions, loop

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs/lenet5.yaml")
SEED_CNN = str(ROOT / "specs/seed_cnn.yaml")
SEED_CNN_BN = str(ROOT / "specs/seed_cnn_bn.yaml")
FAST = ["--threads", "1"]  # the machine's cores are shared: one thread is faster and the same every run


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def main(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "state.json").read_text())["history"]


def test_training_learns_and_eval_agrees(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code, out, err = main(
        capsys,
        "train",
        LENET,
        "--data",
        "digits",
        "--epochs",
        "2",
        "--optimizer",
        "adamw",
        "--lr",
        "0.004",
        "--batch-size",
        "64",
        "--out",
        str(run),
        *FAST,
    )
    assert code == 0, err
    epochs = history(run)
    assert [m["epoch"] for m in epochs] == [1, 2] and out.count("epoch ") == 2 and "img/s" in out
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]
    assert epochs[-1]["test_acc"] > 0.8  # chance is 0.1
    assert "epoch 2/2: step 22/22" in err  # the progress bar (plain lines: stderr is not a terminal here)
    code, out, err = main(
        capsys, "eval", LENET, "--weights", str(run / "model.safetensors"), "--data", "digits", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["loss"] == pytest.approx(epochs[-1]["test_loss"], rel=1e-5)
    assert result["top1"] == pytest.approx(epochs[-1]["test_acc"]) and result["top5"] >= result["top1"]
    matrix = torch.tensor(result["confusion"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 360 and int(matrix.trace()) == round(360 * result["top1"])
    code, out, _ = main(capsys, "eval", LENET, "--weights", str(run), "--data", "digits")  # a run folder works too
    assert code == 0 and "top-1" in out and "confusion" in out
    code, _, err = main(capsys, "train", LENET, "--data", "digits", "--epochs", "1", "--out", str(run), *FAST)
    assert code == 2 and "AS913" in err and "--resume" in err  # the folder holds a run: never overwritten silently


KILLED_CHILD = """
import os, signal, sys
import torch
from archspec import cli

steps, count, step = int(sys.argv[1]), 0, torch.optim.SGD.step

def counting_step(self, *a, **k):
    global count
    count += 1
    if count > steps:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *a, **k)

torch.optim.SGD.step = counting_step
sys.exit(cli.main(sys.argv[2:]))
"""


def killed_after(steps: int, args: list[str]) -> int:
    """Run `archspec ARGS` in a child process that SIGKILLs itself when optimizer step `steps` + 1 begins
    (no cleanup at all, as a power cut or the OOM killer would); return the signal that ended it.
    A new interpreter, not a fork: autograd refuses to run in a child forked after it ran in the parent."""
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(steps), *args], capture_output=True, text=True)
    assert child.returncode < 0, child.stderr  # ended by a signal, not by an error
    return -child.returncode


def test_resume_after_sigkill_mid_epoch_gives_the_same_weights(tmp_path: Path, capsys) -> None:
    # dropout (global RNG), augmentation draws and data order all have to come back the same
    args = [
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "dropout=true",
        "--set",
        "resolution=8",
        "--augment",
        "hflip,crop=2",
        "--epochs",
        "2",
        "--batch-size",
        "128",
        "--seed",
        "7",
        *FAST,
    ]  # 11 steps an epoch
    code, _, err = main(capsys, *args, "--out", str(tmp_path / "whole"))
    assert code == 0, err
    killed = tmp_path / "killed"
    assert killed_after(16, [*args, "--out", str(killed)]) == signal.SIGKILL  # in epoch 2, at its 6th step
    capsys.readouterr()
    state = json.loads((killed / "state.json").read_text())
    assert state["epoch"] == 1 and state["step"] == 11 and not (killed / "model.safetensors").exists()
    code, _, err = main(capsys, *args, "--out", str(killed), "--resume")
    assert code == 0, err
    whole, resumed = load_file(tmp_path / "whole/model.safetensors"), load_file(killed / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    assert [m["test_loss"] for m in history(killed)] == [m["test_loss"] for m in history(tmp_path / "whole")]
    kept = sorted(p.name for p in killed.iterdir() if not p.name.startswith("events.out.tfevents."))  # TensorBoard's
    assert kept == [
        "checkpoint-0002.safetensors",
        "checkpoint-0002.state.safetensors",
        "metrics.csv",
        "model.safetensors",
        "state.json",
    ]
    # a resume with options that change the result is refused
    code, _, err = main(capsys, *args[:-2], "--lr", "0.1", *FAST, "--out", str(killed), "--resume")
    assert code == 1 and "AS915" in err and "lr" in err
    code, _, err = main(capsys, *args, "--warmup-epochs", "1", "--out", str(killed), "--resume")
    assert code == 1 and "AS915" in err and "warmup_epochs (was 0.0, now 1.0)" in err
    # a state.json written before an option existed resumes: its absence means the default
    final = json.loads((killed / "state.json").read_text())
    for key in ("warmup_epochs", "label_smoothing"):
        del final["options"][key]
    (killed / "state.json").write_text(json.dumps(final))
    code, _, err = main(capsys, *args, "--out", str(killed), "--resume")
    assert code == 0, err


def test_compare_writes_the_table_and_curves(tmp_path: Path, capsys) -> None:
    import csv

    from PIL import Image

    import archspec

    out = tmp_path / "cmp"
    code, stdout, err = main(
        capsys,
        "compare",
        LENET,
        f"{SEED_CNN_BN}:augment=hflip+brightness=0.75,widths=[4,8,8]",
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--epochs",
        "2",
        "--out",
        str(out),
        *FAST,
    )
    assert code == 0, err
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [
        "model",
        "dataset",
        "augment",
        "training time (s)",
        "params",
        "train loss",
        "train acc",
        "test loss",
        "test acc",
    ]
    assert len(rows) == 3
    lenet, bn = rows[1:]
    assert lenet[:3] == [LENET, "digits", "-"] and bn[2] == "hflip,brightness=0.75"
    built = [archspec.build(LENET, resolution=16), archspec.build(SEED_CNN_BN, resolution=16, widths=[4, 8, 8])]
    assert [int(lenet[4]), int(bn[4])] == [sum(p.numel() for p in m.parameters()) for m in built]
    assert all(float(row[3]) > 0 and 0 <= float(row[6]) <= 1 and 0 <= float(row[8]) <= 1 for row in (lenet, bn))
    table = (out / "results.md").read_text()
    assert "| model | dataset |" in table and f"{int(lenet[4]):,}" in table and table.split("\n\n")[0] in stdout
    for name in ("loss.png", "accuracy.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size == (700, 450)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "lenet5",
        "seed_cnn_bn_augment=hflip+brightness=0.75_widths=_4_8_8",
    ]
    assert all(len(history(p)) == 2 for p in out.iterdir() if p.is_dir())


@pytest.mark.parametrize(
    "bad, code, words",
    [("resolution=3", "AS208", "below the minimum 8"), ("optimizer=adam", "AS913", "--optimizer 'adam'")],
)
def test_compare_checks_every_entry_before_training_any(tmp_path: Path, capsys, bad, code, words) -> None:
    status, _, err = main(
        capsys,
        "compare",
        SEED_CNN,
        f"{SEED_CNN}:{bad}",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "cmp"),
        *FAST,
    )
    assert status in (1, 2) and code in err and words in err
    assert not (tmp_path / "cmp").exists()  # the first entry did not train


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--optimizer", "adam"], "AS913", "--optimizer 'adam'"),
        (["--schedule", "linear"], "AS913", "--schedule"),
        (["--precision", "fp8"], "AS913", "--precision"),
        (["--augment", "rotate"], "AS913", "unknown augmentation"),
        (["--batch-size", "5000"], "AS913", "larger than the training set"),
        (["--nproc", "3", "--batch-size", "64"], "AS913", "must divide"),
        (["--set", "num_classes=7"], "AS913", "--set num_classes=10"),
        (["--device", "tpu"], "AS913", "use cpu or cuda"),
        (["--warmup-epochs", "1"], "AS913", "fewer than --epochs (1)"),
        (["--warmup-epochs", "nan"], "AS913", "--warmup-epochs nan"),
        (["--label-smoothing", "1"], "AS913", "--label-smoothing 1"),
    ],
)
def test_bad_training_options_are_usage_errors(tmp_path: Path, capsys, args, code, words) -> None:
    status, _, err = main(
        capsys, "train", LENET, "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "r"), *args
    )
    assert status == 2 and f"error: {code}:" in err and words in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, capsys) -> None:
    status, _, err = main(capsys, "train", LENET, "--data", "digits", "--device", "cuda", "--out", str(tmp_path / "r"))
    assert status == 1 and "AS914" in err and "no CUDA device" in err and "--device cpu" in err


def test_out_must_be_a_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    status, _, err = main(capsys, "train", LENET, "--data", "digits", "--out", str(tmp_path / "file"))
    assert status == 2 and "AS913" in err and "not a folder" in err
    # through a missing folder and `..`, the same file: refused before anything is created
    status, _, err = main(capsys, "train", LENET, "--data", "digits", "--out", str(tmp_path / "missing/../file"))
    assert status == 2 and "AS913" in err and "not a folder" in err and not (tmp_path / "missing").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_training_learns(tmp_path: Path, capsys) -> None:
    code, _, err = main(
        capsys,
        "train",
        LENET,
        "--data",
        "digits",
        "--epochs",
        "3",
        "--optimizer",
        "adamw",
        "--lr",
        "0.004",
        "--device",
        "cuda",
        "--precision",
        "bf16",
        "--channels-last",
        "--augment",
        "hflip,crop",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    assert history(tmp_path / "r")[-1]["test_acc"] > 0.8


def test_eval_notes_settings_that_differ_from_the_run(tmp_path: Path, capsys) -> None:
    """dropout=true adds no tensor, so the weights load either way: eval says what they were trained with."""
    code, _, err = main(
        capsys,
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "dropout=true",
        "--set",
        "resolution=8",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "r"),
        *FAST,
    )
    assert code == 0, err
    for weights in (tmp_path / "r", tmp_path / "r" / "model.safetensors"):
        code, _, err = main(
            capsys, "eval", SEED_CNN, "--weights", str(weights), "--data", "digits", "--set", "resolution=8"
        )
        assert code == 0 and "note: these weights were trained with dropout=True, resolution=8" in err
        code, _, err = main(
            capsys,
            "eval",
            SEED_CNN,
            "--weights",
            str(weights),
            "--data",
            "digits",
            "--set",
            "dropout=true",
            "--set",
            "resolution=8",
        )
        assert code == 0 and "note:" not in err


def test_eval_refuses_weights_of_another_model(tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    import archspec

    weights = tmp_path / "lenet.safetensors"
    save_file({k: v.contiguous() for k, v in archspec.build(LENET).state_dict().items()}, weights)
    status, _, err = main(capsys, "eval", SEED_CNN, "--weights", str(weights), "--data", "digits")
    assert status == 1 and "AS915" in err and str(weights) in err and "same spec" in err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    status, _, err = main(capsys, "eval", LENET, "--weights", str(broken), "--data", "digits")
    assert status == 1 and "AS915" in err and "not a readable .safetensors" in err
    status, _, err = main(capsys, "eval", LENET, "--weights", str(tmp_path / "none.safetensors"), "--data", "digits")
    assert status == 1 and "AS915" in err and "no checkpoint file" in err
    # a device would be read for ever, a FIFO (also as a run folder's state.json) would block
    fifo = tmp_path / "run" / "state.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for weights in ("/dev/zero", str(fifo), str(fifo.parent)):
        status, _, err = main(capsys, "eval", LENET, "--weights", weights, "--data", "digits")
        assert status == 1 and "AS915" in err and "Traceback" not in err, err


def test_bf16_evaluation_is_close_to_fp32() -> None:
    from archspec.train import data

    ds = data.load("digits")
    model = loop.build_model(LENET, {}, None, 10, 0)
    test = ds.test.subset(64)
    fp32 = loop.evaluate(model.module, test, model, ds, torch.device("cpu"))
    bf16 = loop.evaluate(model.module, test, model, ds, torch.device("cpu"), "bf16")
    assert bf16.loss == pytest.approx(fp32.loss, rel=0.05) and bf16.images == fp32.images == 64
    assert sum(map(sum, fp32.confusion)) == 64 and fp32.top5 >= fp32.top1


def test_channels_last_trains_the_same_network(tmp_path: Path, capsys) -> None:
    """--channels-last changes the memory layout only: the same run gives the same metrics and weights (to
    float rounding: NHWC kernels sum in another order), and the checkpoint is an ordinary state dict."""
    runs = {}
    for name, extra in (("nchw", []), ("nhwc", ["--channels-last"])):
        code, _, err = main(
            capsys,
            "train",
            SEED_CNN_BN,
            "--data",
            "digits",
            "--set",
            "resolution=16",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / name),
            *FAST,
            *extra,
        )
        assert code == 0, err
        runs[name] = history(tmp_path / name), load_file(tmp_path / name / "model.safetensors")
    (nchw, a), (nhwc, b) = runs["nchw"], runs["nhwc"]
    assert [m["test_loss"] for m in nhwc] == pytest.approx([m["test_loss"] for m in nchw], rel=1e-3)
    assert a.keys() == b.keys() and all(b[k].is_contiguous() for k in b)
    assert max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()) < 1e-3


def test_warmup_ramps_per_step_then_the_schedule_runs_over_the_rest() -> None:
    options = TrainOptions(spec="s", data="digits", epochs=4, lr=1.0, warmup_epochs=1)  # 10 steps an epoch
    assert [loop.learning_rate(options, s, 0, 10) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert loop.learning_rate(options, 10, 1, 10) == 1.0  # cosine starts at the top after the warm-up
    assert loop.learning_rate(options, 25, 2, 10) == pytest.approx(0.5)  # half-way through the 30 cosine steps
    assert loop.learning_rate(options, 40, 3, 10) == pytest.approx(0.0, abs=1e-12)
    stepped = options.with_(schedule="step", warmup_epochs=0.5)
    assert [loop.learning_rate(stepped, s, s // 10, 10) for s in (2, 7, 25, 35)] == pytest.approx([0.6, 1, 0.1, 0.01])


def test_label_smoothing_is_in_the_training_loss_only(tmp_path: Path, capsys) -> None:
    """Smoothing raises the training loss (a confident model cannot reach 0), not the reported test loss,
    which stays plain cross-entropy, the figure eval prints."""
    for name, extra in (("plain", []), ("smooth", ["--label-smoothing", "0.2"])):
        code, _, err = main(
            capsys,
            "train",
            LENET,
            "--data",
            "digits",
            "--set",
            "resolution=16",
            "--epochs",
            "3",
            "--out",
            str(tmp_path / name),
            *FAST,
            *extra,
        )
        assert code == 0, err
    plain, smooth = history(tmp_path / "plain")[-1], history(tmp_path / "smooth")[-1]
    assert smooth["train_loss"] > plain["train_loss"] + 0.2
    code, out, err = main(
        capsys,
        "eval",
        LENET,
        "--weights",
        str(tmp_path / "smooth"),
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["loss"] == pytest.approx(smooth["test_loss"], rel=1e-5)


def test_learning_rate_schedules() -> None:
    cosine = TrainOptions(spec="s", data="digits", epochs=4, lr=1.0)
    assert loop.learning_rate(cosine, 0, 0, 10) == 1.0
    assert loop.learning_rate(cosine, 20, 2, 10) == pytest.approx(0.5)
    step = cosine.with_(schedule="step")
    assert [loop.learning_rate(step, 0, e, 10) for e in range(4)] == pytest.approx([1, 1, 0.1, 0.01])
    assert loop.learning_rate(cosine.with_(schedule="none"), 39, 3, 10) == 1.0


def test_lenet5_reaches_97_percent_on_digits_within_30_epochs(tmp_path: Path, capsys) -> None:
    """The issue's end-to-end target, in the default run (about 15 s on 2 idle cores): the trained model, not
    the best epoch, must hold 97%, and `archspec eval` of the written weights must say the same."""
    code, _, err = main(
        capsys, "train", LENET, "--data", "digits", "--epochs", "30", "--out", str(tmp_path / "r"), *FAST
    )
    assert code == 0, err
    assert history(tmp_path / "r")[-1]["test_acc"] >= 0.97
    code, out, err = main(
        capsys, "eval", LENET, "--weights", str(tmp_path / "r" / "model.safetensors"), "--data", "digits", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["top1"] == pytest.approx(history(tmp_path / "r")[-1]["test_acc"])


@pytest.mark.exhaustive
def test_compile_trains_like_eager(tmp_path: Path, capsys) -> None:
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        code, _, err = main(
            capsys, "train", LENET, "--data", "digits", "--epochs", "1", "--out", str(tmp_path / name), *FAST, *extra
        )
        assert code == 0, err
    eager, compiled = history(tmp_path / "eager"), history(tmp_path / "compiled")
    assert compiled[0]["test_loss"] == pytest.approx(eager[0]["test_loss"], rel=1e-3)


def test_progress_bar_redraws_on_a_terminal_and_writes_lines_otherwise() -> None:
    import io

    from archspec.train.report import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, plain = Terminal(), io.StringIO()
    for stream in (tty, plain):
        progress = Progress(2, 5, steps=4, batch=8, stream=stream)
        for step in range(1, 5):
            progress.update(step)
    # tqdm's bar on a terminal: the samples done of the epoch's, throughput and the time left, one redrawn line
    last = tty.getvalue().rstrip("\n").split("\r")[-1]
    assert tty.getvalue().startswith("\r") and tty.getvalue().endswith("\n") and tty.getvalue().count("\n") == 1
    assert (
        last.startswith("epoch 2/5: 100%") and "/32" in last and "img/s]" in last and "<00:00" in last
    )  # 4 x 8 images
    assert plain.getvalue() == plain.getvalue().splitlines()[0] + "\n" and "\r" not in plain.getvalue()
    assert plain.getvalue().startswith("epoch 2/5: step 4/4,")  # throttled: only the last step of a fast epoch
    assert "img/s, 0:00 left" in plain.getvalue()
