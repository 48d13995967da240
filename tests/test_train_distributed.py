"""--nproc 2: two gloo processes on loopback, launched by torch.distributed's elastic launcher, end
with the same weights as one process with the same global batch (up to the order of float sums), under
DDP and under FSDP (whose sharded checkpoint resumes); started by torchrun, the same; Ctrl-C exits 130."""

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

ROOT = Path(__file__).resolve().parent.parent
SEED_CNN = str(ROOT / "specs/seed_cnn.yaml")


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_gloo_processes_match_one_process(tmp_path: Path, capfd, monkeypatch) -> None:
    import torch.distributed.launcher.api as launcher

    launches = []
    real = launcher.elastic_launch

    def recording(config, entrypoint):
        launches.append(config)
        return real(config, entrypoint)

    monkeypatch.setattr(launcher, "elastic_launch", recording)
    # augmentation draws are per image of the global batch, so they must line up across processes too
    args = [
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--augment",
        "hflip,crop=2",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--lr",
        "0.1",
        "--threads",
        "1",
        "--seed",
        "3",
    ]
    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    capfd.readouterr()
    assert cli.main([*args, "--out", str(tmp_path / "two"), "--nproc", "2"]) == 0
    out, err = capfd.readouterr()
    assert len(launches) == 1 and launches[0].nproc_per_node == 2 and launches[0].rdzv_backend == "c10d"
    assert "2 processes" in err and "test accuracy" in out
    one, two = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    start = {k: v for k, v in __import__("archspec").build(SEED_CNN, resolution=16, seed=3).state_dict().items()}
    assert one.keys() == two.keys() == start.keys()
    for name in one:
        assert not torch.equal(one[name], start[name]), name  # both trained
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=2e-5, msg=name)
    h1, h2 = (json.loads((tmp_path / n / "state.json").read_text())["history"][0] for n in ("one", "two"))
    assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-4)  # all-reduced over both processes
    assert h2["train_acc"] == pytest.approx(h1["train_acc"])


def test_fsdp_matches_one_process_and_resumes_from_its_sharded_checkpoint(tmp_path: Path, capfd) -> None:
    """--strategy fsdp (FSDP2's fully_shard over two gloo processes): one epoch, a resume from the sharded
    (torch.distributed.checkpoint) folder it wrote, a second epoch; the weights equal two epochs of one
    process. seed_cnn's three largest layers are FSDP units of their own, the rest is the root's unit."""
    from archspec.train import sharded

    assert len(sharded.units(__import__("archspec").build(SEED_CNN, resolution=16))) == 3
    args = [
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--augment",
        "hflip",
        "--batch-size",
        "128",
        "--lr",
        "0.03",
        "--schedule",
        "none",
        "--threads",
        "1",
        "--seed",
        "5",
    ]  # the same rates over 1 or 2 epochs
    # (at --lr 0.1 two epochs amplify the float-sum order to 7e-5; at 0.03 it stays near 1e-7 of each tensor's scale)
    assert cli.main([*args, "--epochs", "2", "--out", str(tmp_path / "one")]) == 0
    fsdp = [*args, "--out", str(tmp_path / "two"), "--nproc", "2", "--strategy", "fsdp"]
    assert cli.main([*fsdp, "--epochs", "1"]) == 0
    run = tmp_path / "two"
    state = json.loads((run / "state.json").read_text())
    assert state["weights"] == "checkpoint-0001.dcp" and (run / "checkpoint-0001.dcp/.metadata").is_file()
    assert sorted(p.name for p in (run / "checkpoint-0001.dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    # eval reads the sharded checkpoint in one process (no group) and finds the epoch's test loss
    (run / "model.safetensors").rename(tmp_path / "final.safetensors")
    capfd.readouterr()
    assert (
        cli.main(["eval", SEED_CNN, "--weights", str(run), "--data", "digits", "--set", "resolution=16", "--json"]) == 0
    )
    assert json.loads(capfd.readouterr().out)["loss"] == pytest.approx(state["history"][0]["test_loss"], rel=1e-5)
    (tmp_path / "final.safetensors").rename(run / "model.safetensors")
    assert cli.main([*fsdp, "--epochs", "2", "--resume"]) == 0
    # (the workers' own output is not asserted: they fork from a fork server that may have started, with its
    # stderr, in an earlier test)
    assert [m["epoch"] for m in json.loads((run / "state.json").read_text())["history"]] == [1, 2]
    assert not (run / "checkpoint-0001.dcp").exists() and (run / "checkpoint-0002.dcp/.metadata").is_file()
    one, two = load_file(tmp_path / "one/model.safetensors"), load_file(run / "model.safetensors")  # gathered, full
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=2e-5, msg=name)
    # a sharded run is resumed only as one
    capfd.readouterr()
    code = cli.main([*args, "--out", str(run), "--epochs", "3", "--resume"])
    assert code == 1 and "resume it with the same --strategy" in capfd.readouterr().err


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_interrupting_two_processes_exits_130_without_a_traceback(tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "archspec",
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--epochs",
        "500",
        "--batch-size",
        "128",
        "--threads",
        "1",
        "--nproc",
        "2",
        "--out",
        str(tmp_path / "r"),
    ]
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # rank 0's line after the first epoch (its steps done, its checkpoint written)
        assert first.startswith("epoch 1/500:"), first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the launching process
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SignalException" not in err and err.rstrip().endswith("interrupted"), err
    assert json.loads((tmp_path / "r/state.json").read_text())["epoch"] >= 1  # a run that --resume continues


def test_nproc_is_bounded_by_the_cpus_and_a_limit(capfd) -> None:
    from archspec.train import MAX_NPROC
    from archspec.train.distributed import cpus

    for nproc, expected in (
        (cpus() + 1, f"this machine lets archspec use {cpus()} CPUs"),
        (MAX_NPROC + 1, f"at most {MAX_NPROC} processes on one machine"),
    ):
        args = [
            "train",
            SEED_CNN,
            "--data",
            "digits",
            "--batch-size",
            str(nproc),
            "--nproc",
            str(nproc),
            "--epochs",
            "1",
        ]
        assert cli.main(args) == 2
        assert expected in capfd.readouterr().err


def test_started_by_torchrun_it_joins_torchruns_group(tmp_path: Path, capfd) -> None:
    """`torchrun --nproc-per-node 2 -m archspec train ...` (what docs/training.md shows for several machines,
    here on one): both processes join torchrun's group, FSDP shards over them, rank 0 alone reports."""
    args = [
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--lr",
        "0.1",
        "--threads",
        "1",
        "--seed",
        "7",
    ]
    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "archspec",
    ]
    done = subprocess.run(
        [*torchrun, *args, "--strategy", "fsdp", "--out", str(tmp_path / "two")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1 and done.stdout.count("epoch 1/1:") == 1  # rank 0 only
    assert "2 processes (fsdp)" in done.stderr
    one, two = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=2e-5, msg=name)


def test_under_torchrun_nproc_is_torchruns(monkeypatch, capfd) -> None:
    for name, value in (
        ("RANK", "0"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "1"),
    ):  # torchrun's environment, without a torchrun (nothing is joined)
        monkeypatch.setenv(name, value)
    assert cli.main(["train", SEED_CNN, "--data", "digits", "--nproc", "2", "--epochs", "1"]) == 2
    assert "leave --nproc out" in capfd.readouterr().err


def test_fsdp_units_leave_tied_and_graph_read_parameters_to_the_root() -> None:
    """GPT-2's head reads the token embedding's weight directly (get_attr): were the embedding a unit of its
    own, its weight would be freed after the embedding's forward and missing for the head."""
    import archspec
    from archspec.train import sharded

    model = archspec.build(ROOT / "specs/gpt2.yaml", n_layer=2, n_embd=64, n_head=4, seq_len=16, vocab_size=256)
    units = sharded.units(model)
    grouped = [name for names in units for name in names]
    assert "transformer.wte" not in grouped and "transformer.ln_f" not in grouped  # tied; too small
    assert units[0] == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj"] and len(units) == 4
    assert sharded.units(model, min_params=10**9) == []  # everything in the root's unit


FAULT = """
import os

from archspec.errors import ArchspecError
from archspec.train import loop

real = loop.evaluate


def evaluate(*args, **kwargs):
    if os.environ["RANK"] == "0":
        raise ArchspecError(loop.STEP_FAILED, "evaluation failed on rank 0 alone (injected)")
    return real(*args, **kwargs)


loop.evaluate = evaluate
"""

LAUNCH_WITH_FAULT = """
import multiprocessing, sys
preload = multiprocessing.set_forkserver_preload
multiprocessing.set_forkserver_preload = lambda names: preload([*names, "fault"])  # after the loop: patches it
from archspec import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_an_error_on_one_process_stops_the_others_at_once(tmp_path: Path) -> None:
    """Rank 0 alone evaluates under DDP; an error there (a GPU out of memory in evaluation, say) used to leave
    rank 1 waiting at the epoch's barrier until gloo's 30-minute timeout. The failure is injected into the
    workers through the fork server's preload (the one way into them from here), and nothing else is mocked."""
    (tmp_path / "fault.py").write_text(FAULT)
    args = [
        "train",
        SEED_CNN,
        "--data",
        "digits",
        "--set",
        "resolution=16",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--threads",
        "1",
        "--nproc",
        "2",
        "--out",
        str(tmp_path / "r"),
    ]
    env = _env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]  # the fork server's path: fault.py
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH_WITH_FAULT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.rstrip().endswith("error: AS917: evaluation failed on rank 0 alone (injected)"), done.stderr
    assert "Traceback" not in done.stderr
