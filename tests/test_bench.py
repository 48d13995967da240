"""archspec bench: the JSON contract, the reference really running interleaved with ours, clear errors.
Tiny iteration counts on small inputs: these check the machinery, not the speed."""

import json
from pathlib import Path

import pytest
import torch

import archspec.bench.runners as runners
from archspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests/specs/residual.yaml")
SMALL = [str(ROOT / "specs/resnet18.yaml"), "--set", "resolution=32", "--set", "num_classes=10"]
QUICK = ["--iters", "2", "--warmup", "1", "--batch", "2"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def bench(capsys, *argv):
    code = main(["bench", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def calls(monkeypatch):
    """How many steps each runner ran, by label."""
    counted: dict[str, int] = {}
    real = runners.ModuleRunner.__call__

    def counting(self, x, y):
        counted[self.label] = counted.get(self.label, 0) + 1
        return real(self, x, y)

    monkeypatch.setattr(runners.ModuleRunner, "__call__", counting)
    return counted


def test_json_fields(capsys, calls):
    threads = torch.get_num_threads()
    code, out, err = bench(capsys, TINY, "--json", "--threads", "1", *QUICK)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {
        "spec",
        "backend",
        "device",
        "device_name",
        "dtype",
        "batch",
        "mode",
        "compile",
        "channels_last",
        "optimize",
        "threads",
        "warmup",
        "iters",
        "torch",
        "macs",
        "ours",
        "reference",
        "ratio",
        "output_error",
    }
    assert (data["spec"], data["backend"], data["device"], data["mode"], data["batch"], data["threads"]) == (
        "tiny_residual",
        "torch",
        "cpu",
        "inference",
        2,
        1,
    )
    ours = data["ours"]
    assert (
        len(ours["samples_ms"]) == 2
        and ours["min_ms"] <= ours["q1_ms"] <= ours["median_ms"] <= ours["q3_ms"] <= ours["max_ms"]
    )
    assert ours["images_per_s"] == pytest.approx(2 / (ours["median_ms"] / 1e3))
    assert data["reference"] is None and data["ratio"] is None and data["output_error"] is None
    assert calls == {"archspec (torch)": 1 + 2}
    assert torch.get_num_threads() == threads  # restored


def test_vs_torchvision_times_the_reference_interleaved(capsys, calls):
    code, out, err = bench(capsys, *SMALL, "--vs", "torchvision", "--json", *QUICK)
    assert code == 0, err
    data = json.loads(out)
    assert data["reference"]["label"] == "torchvision.models.resnet18"
    assert len(data["reference"]["samples_ms"]) == 2
    assert data["ratio"] == pytest.approx(data["ours"]["median_ms"] / data["reference"]["median_ms"])
    assert data["output_error"] < 1e-5  # same weights, same function
    assert calls == {"archspec (torch)": 4, "torchvision.models.resnet18": 4}  # + the output comparison


def test_train_step_and_text_report(capsys, calls):
    code, out, err = bench(capsys, *SMALL, "--vs", "timm", "--train", "--channels-last", *QUICK)
    assert code == 0, err
    assert "train step" in out and "timm.resnet18" in out and "ratio (time, ours / timm.resnet18):" in out
    assert calls == {"archspec (torch)": 3, "timm.resnet18": 3}


def test_compile_wraps_both_sides_in_torch_compile(capsys, monkeypatch):
    compiled = []
    real = torch.compile

    def eager_compile(model, **kwargs):  # dynamo capture without inductor's C++ build, which is slow on CPU
        compiled.append(type(model).__name__)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    code, _, err = bench(capsys, *SMALL, "--vs", "torchvision", "--compile", "--optimize", *QUICK)
    assert code == 0, err
    assert compiled == ["Resnet18", "ResNet"]


@pytest.mark.parametrize(
    "argv, message, exit_code",
    [
        (["--backend", "nope"], "AS806: unknown backend 'nope'", 2),  # a usage error
        (["--vs", "timm"], "AS902: timm has no reference model for spec 'tiny_residual'", 1),
        (["--train", "--optimize"], "AS901: --optimize builds an inference module", 1),
        (["--batch", "0"], "AS901: --batch, --iters and --threads must be at least 1", 1),
    ],
)
def test_errors_are_one_line_and_exit_1(capsys, argv, message, exit_code):
    code, out, err = bench(capsys, TINY, *argv)
    assert code == exit_code and out == "" and err.startswith(f"error: {message}") and "Traceback" not in err


def test_backend_without_a_runner(capsys, monkeypatch):
    monkeypatch.setattr(runners, "RUNNERS", {})
    code, _, err = bench(capsys, TINY, *QUICK)
    assert code == 1 and "backend 'torch' has no benchmark runner" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_no_cuda_is_a_clear_error(capsys):
    code, _, err = bench(capsys, TINY, "--device", "cuda")
    assert code == 1 and err.startswith("error: AS901: no CUDA device")


@needs_cuda
@pytest.mark.parametrize("mode", [[], ["--train"]])
def test_cuda_bf16_channels_last_smoke(capsys, mode):
    code, out, err = bench(
        capsys,
        *SMALL,
        "--device",
        "cuda",
        "--dtype",
        "bf16",
        "--channels-last",
        "--vs",
        "torchvision",
        "--json",
        *QUICK,
        *mode,
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["dtype"] == "bf16" and data["ratio"] > 0 and data["device_name"] == torch.cuda.get_device_name()
