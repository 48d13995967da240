"""Language models train on a text: `--data text:PATH` reads a UTF-8 file as bytes (a vocabulary of 256),
cuts it into seq_len windows with a held-out tail, and trains next-token prediction; eval reports the
loss in nats per token. Files that are not regular, too large or not UTF-8 are refused with their code."""

import json
import math
import os
from pathlib import Path
import time

import pytest
import torch

from archspec import cli
from archspec.errors import ArchspecError
from archspec.train import data

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs/lenet5.yaml")


def main(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_text_is_cut_into_next_token_windows(tmp_path: Path) -> None:
    text = "héllo wörld, " * 40  # multi-byte characters: bytes are the tokens, not characters
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    raw = text.encode()
    ds = data.load(f"text:{path}", seq_len=8)
    assert ds.task == data.NEXT_TOKEN and ds.text and len(ds.classes) == 256 and ds.kind == "text"
    held = max(9, round(len(raw) * data.TEXT_TEST_FRACTION))
    # Training windows start every 8 / TEXT_TRAIN_OVERLAP bytes, held-out ones every 8 (end to end).
    for split, part, step in (
        (ds.train, raw[: len(raw) - held], 8 // data.TEXT_TRAIN_OVERLAP),
        (ds.test, raw[len(raw) - held :], 8),
    ):
        assert len(split) == (len(part) - 9) // step + 1 and split.images.dtype == split.labels.dtype == torch.uint8
        for k in range(len(split)):  # window k: bytes k*step .. k*step+7, and the byte after each
            assert bytes(split.images[k].tolist()) == part[step * k : step * k + 8]
            assert bytes(split.labels[k].tolist()) == part[step * k + 1 : step * k + 9]
        assert step * (len(split) - 1) + 9 <= len(part)  # no window reads past its part (the tail stays unseen)
    assert "windows of 8 tokens" in data.describe(ds)


@pytest.mark.parametrize("spelling, message", [("text", "needs a path"), ("text:", "after the colon")])
def test_text_needs_a_path(spelling: str, message: str) -> None:
    with pytest.raises(ArchspecError, match=message) as caught:
        data.parse(spelling)
    assert caught.value.code == "AS911"


def test_a_bare_file_hints_at_text(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("some text")
    with pytest.raises(ArchspecError, match=f"--data text:{path}"):
        data.parse(str(path))


def test_bad_text_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def code_of(path: object, seq_len: int = 8) -> tuple[str, str]:
        with pytest.raises(ArchspecError) as caught:
            data.load(f"text:{path}", seq_len=seq_len)
        return caught.value.code, caught.value.message

    assert code_of(tmp_path / "missing.txt")[0] == "AS911"
    assert code_of(tmp_path) == ("AS912", code_of(tmp_path)[1]) and "a folder" in code_of(tmp_path)[1]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened without blocking and refused: never read forever
    assert code_of(fifo)[0] == "AS912" and "FIFO" in code_of(fifo)[1]
    assert code_of("/dev/zero")[0] == "AS912" and "device" in code_of("/dev/zero")[1]
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"abc" * 20 + b"\xff\xfe" + b"abc" * 20)
    code, message = code_of(binary)
    assert code == "AS912" and "not UTF-8" in message and "byte 60" in message
    short = tmp_path / "short.txt"
    short.write_text("0123456789")
    code, message = code_of(short)
    assert code == "AS912" and "too short" in message
    monkeypatch.setattr(data, "TEXT_MAX_BYTES", 100)
    large = tmp_path / "large.txt"
    large.write_text("x" * 101)
    code, message = code_of(large)
    assert code == "AS912" and "MiB" in message
    large.write_text("x" * 100)  # at the bound: read
    assert len(data.load(f"text:{large}", seq_len=8).train) > 0


def test_a_text_needs_a_spec_that_takes_tokens(tmp_path: Path, capsys) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("abcdefgh" * 100)
    code, _, err = main(
        capsys, "train", LENET, "--data", f"text:{path}", "--epochs", "1", "--out", str(tmp_path / "run")
    )
    assert code == 2 and "AS913" in err and "token ids [seq_len]" in err and "Traceback" not in err


GPT2 = str(ROOT / "specs/gpt2.yaml")
TINY = [
    "--set",
    "n_layer=1",
    "--set",
    "n_embd=16",
    "--set",
    "n_head=2",
    "--set",
    "seq_len=16",
    "--set",
    "n_positions=16",
]


def test_a_language_model_trains_and_eval_reports_nats_per_token(tmp_path: Path, capsys) -> None:
    """vocab_size comes from the data (256 byte values) unless --set gives it; eval reports tokens."""
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    run = tmp_path / "run"
    code, out, err = main(
        capsys,
        "train",
        GPT2,
        "--data",
        f"text:{path}",
        *TINY,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--threads",
        "1",
        "--out",
        str(run),
    )
    assert code == 0, err
    assert "nats per token" in out and "windows of 16 tokens" in err and "seq/s" in out
    state = json.loads((run / "state.json").read_text())
    assert state["history"][-1]["test_loss"] < state["history"][0]["train_loss"]
    code, out, err = main(capsys, "eval", GPT2, "--weights", str(run), "--data", f"text:{path}", *TINY, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"loss", "top1", "top5", "tokens", "vocabulary"} and result["vocabulary"] == 256
    held = max(17, round(len(path.read_bytes()) * data.TEXT_TEST_FRACTION))
    assert result["tokens"] == (held - 1) // 16 * 16
    assert result["loss"] == pytest.approx(state["history"][-1]["test_loss"], rel=1e-6)
    assert result["loss"] < 5.55  # below uniform guessing over 256 bytes (a repeated sentence is easy)
    code, out, _ = main(capsys, "eval", GPT2, "--weights", str(run), "--data", f"text:{path}", *TINY)
    assert code == 0 and "nats per token" in out and "bits" in out


def test_a_text_refuses_augmentations_and_a_head_of_another_size(tmp_path: Path, capsys) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("abcdefgh" * 100)
    common = ["--data", f"text:{path}", *TINY, "--epochs", "1", "--out", str(tmp_path / "run")]
    code, _, err = main(capsys, "train", GPT2, *common, "--augment", "hflip")
    assert code == 2 and "AS913" in err and "augmentations apply to images" in err
    code, _, err = main(capsys, "train", GPT2, *common, "--set", "vocab_size=100")  # --set wins, and does not fit
    assert code == 2 and "AS913" in err and "[16, 256]" in err


# The target: an eval loss of at most 2.5 nats per token (uniform 5.55; on this split a bigram model
# gives 2.90, a trigram 2.59). Training windows overlap four times (data.TEXT_TRAIN_OVERLAP), so three epochs
# are 3 x 5,400 windows: batch 16, AdamW 3e-3 after a 0.3-epoch warm-up gave 2.28 on one thread (77 s) and,
# with the docs grown to 117 KB, 2.16 on two threads (46 s on the 2-core machine).
# With windows end to end (three times 1,350) no recipe of about 25 tried went below 2.60.
DOCS_LOSS_BOUND = 2.5


def test_a_two_layer_gpt2_learns_the_projects_docs(tmp_path: Path, capsys) -> None:
    """GPT-2 (n_embd=128, n_head=4, vocab_size=256, seq_len=64, two layers) trained 3 epochs on docs/*.md
    (sorted, concatenated; the last tenth held out); eval reports its test loss in nats per token."""
    corpus = tmp_path / "docs.txt"
    corpus.write_bytes(b"".join(path.read_bytes() for path in sorted((ROOT / "docs").glob("*.md"))))
    spec = [
        "--set",
        "n_layer=2",
        "--set",
        "n_embd=128",
        "--set",
        "n_head=4",
        "--set",
        "vocab_size=256",
        "--set",
        "seq_len=64",
        "--set",
        "embd_pdrop=0",
        "--set",
        "attn_pdrop=0",
        "--set",
        "resid_pdrop=0",
    ]
    run = tmp_path / "run"
    start = time.perf_counter()
    code, out, err = main(
        capsys,
        "train",
        GPT2,
        "--data",
        f"text:{corpus}",
        *spec,
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--schedule",
        "none",
        "--warmup-epochs",
        "0.3",
        "--threads",
        "2",
        "--out",
        str(run),
    )
    seconds = time.perf_counter() - start
    assert code == 0, err
    code, out, err = main(capsys, "eval", GPT2, "--weights", str(run), "--data", f"text:{corpus}", *spec, "--json")
    assert code == 0, err
    loss = json.loads(out)["loss"]
    print(
        f"gpt2 (2 layers, 128 wide) on the docs ({corpus.stat().st_size:,} bytes), 3 epochs: test loss {loss:.4f} nats "
        f"per token (uniform {math.log(256):.2f}), {seconds:.0f} s of training and evaluation"
    )
    assert loss <= DOCS_LOSS_BOUND
