"""The aoti backend: an AOTInductor package that loads with torch._inductor.aoti_load_package, without
archspec or any model code, and matches the torch backend at several batch sizes.

Compiling is slow on 2 CPU cores (1.5 to 2 minutes for resnet50, about 1 for even a tiny network), so
the CPU test runs resnet50 alone, through the command line (convolutions, batch norm, pooling, residual
adds, linear, and its dynamic resolution range). A one-layer ViT (attention, layer norm, tokens) is the
CUDA test's case, which skips itself without a GPU (it also passed as a CPU case, 48 s, before the CPU
test was cut to resnet50 to keep the suite's time).
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest
import torch
import torch._inductor

import archspec
from archspec.backends import BuildOptions
from archspec.backends.aoti.backend import device_setting
from archspec.errors import ArchspecError
from archspec.registry import default_registry
from backend_cases import ZOO, sample, shallow, spec
from reference import relative_error

ROOT = Path(__file__).resolve().parents[1]
LOAD = (
    "import sys; sys.modules['archspec'] = None\n"
    "import torch, torch._inductor\n"
    "model = torch._inductor.aoti_load_package(sys.argv[1])\n"
    "xs = torch.load(sys.argv[2])\n"
    "with torch.no_grad(): torch.save([model(x.to(sys.argv[4])).cpu() for x in xs], sys.argv[3])\n"
)
CASES = {
    "lenet5": (spec("lenet5"), {}),
    "resnet50": (spec("resnet50"), {}),
    "vit_tiny": (
        spec("vit_b_16"),
        {"resolution": 32, "num_layers": 1, "hidden_dim": 32, "num_heads": 2, "mlp_dim": 64},
    ),
    # every upsampling op (conv_transpose2d, interpolate by scale, to a size, to another layer's size), and
    # every op of the window transformers (attention with biases, matmul, roll, slice, gather, computed buffers)
    "upsampling_ops": (ROOT / "tests/specs/upsampling_ops.yaml", {}),
    "window_ops": (ROOT / "tests/specs/window_ops.yaml", {}),
}


def build_and_load(name: str, tmp_path: Path, device: str) -> float:
    path, overrides = CASES[name]
    out = tmp_path / f"{name}.aoti.pt2"
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "archspec.cli",
            "build",
            str(path),
            "--backend",
            "aoti",
            "-o",
            str(out),
            "--option",
            f"device={device}",
            *sets,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no staging folder left behind
    shape = archspec.summary(path, **overrides).input
    xs = [torch.randn(n, *shape, generator=torch.Generator().manual_seed(n)) for n in (1, 3)]
    if name == "resnet50":  # another size inside the spec's dynamic: resolution range
        xs.append(torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(2)))
    torch.save(xs, tmp_path / "x.pt")
    run = subprocess.run(
        [sys.executable, "-c", LOAD, str(out), str(tmp_path / "x.pt"), str(tmp_path / "y.pt"), device],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    reference = archspec.build(path, **overrides).eval()
    with torch.no_grad():
        errors = [relative_error(y, reference(x)) for x, y in zip(xs, torch.load(tmp_path / "y.pt"))]
    print(f"aoti {name} ({device}): max relative error {max(errors):.3g}")
    return max(errors)


@pytest.mark.slow
# resnet50 (the acceptance command; its dynamic resolution range too) compiles for 80 s on 2 cores:
# with --exhaustive. By default lenet5 takes the same path in 25 s.
@pytest.mark.parametrize(
    "name",
    ["lenet5", *(pytest.param(n, marks=pytest.mark.exhaustive) for n in ("resnet50", "upsampling_ops", "window_ops"))],
)
def test_cpu_package_loads_without_archspec_and_matches(tmp_path: Path, name: str) -> None:
    assert build_and_load(name, tmp_path, "cpu") <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_package_loads_without_archspec_and_matches(tmp_path: Path) -> None:
    assert build_and_load("vit_tiny", tmp_path, "cuda") <= 1e-3  # TF32 / cuDNN algorithms


def test_device_setting() -> None:
    assert device_setting({}, cuda_available=False) == "cpu" and device_setting({}, cuda_available=True) == "cuda"
    with pytest.raises(ArchspecError, match="AS810.*CUDA GPU"):
        device_setting({"device": "cuda"}, cuda_available=False)
    with pytest.raises(ArchspecError, match="AS809.*precision"):
        device_setting({"precision": "fp16"}, cuda_available=False)
    with pytest.raises(ArchspecError, match="AS809.*'tpu'"):
        device_setting({"device": "tpu"}, cuda_available=True)


@pytest.mark.exhaustive
@pytest.mark.parametrize("path", [p for p in ZOO if p.stem not in CASES], ids=lambda p: p.stem)
def test_zoo_aoti_matches_torch_backend(path: Path, tmp_path: Path) -> None:
    """The rest of the zoo at small sizes (about a minute of compiling each: only with --exhaustive)."""
    compiled = archspec.compile_spec(path, shallow(path.stem))
    registry = default_registry()
    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
    options = archspec.pipeline.build_options(compiled, 0, None)
    backend = registry.backend("aoti")
    out = tmp_path / f"{path.stem}.aoti.pt2"
    backend.save(backend.build(compiled.graph, options), compiled.graph, out, options)
    model = torch._inductor.aoti_load_package(str(out))
    for batch in (1, 3):
        x = sample(compiled.costs.input, compiled.costs.input_dtype, batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            assert relative_error(model(x), reference(x)) <= 1e-4
