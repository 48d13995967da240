"""--nproc 2: two gloo processes on loopback, launched by torch.distributed's elastic launcher, end
with the same weights as one process with the same global batch (up to the order of float sums)."""

import json
from pathlib import Path

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
    args = ["train", SEED_CNN, "--data", "digits", "--set", "resolution=16", "--augment", "hflip,crop=2", "--epochs", "1",
            "--batch-size", "128", "--lr", "0.1", "--threads", "1", "--seed", "3"]
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
