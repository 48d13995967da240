"""The onnx backend: every spec in specs/ exports, passes onnx.checker's full check, and matches the
torch backend in ONNX Runtime (max relative error <= 1e-4) at two batch sizes.

The ONNX exporter's cost grows with the node count (about 5 s per small network on 2 cores), so the zoo
runs at `shallow` sizes (tests/backend_cases.py: every op configuration of the spec, fewer repeats of
its blocks), and networks that come out identical at those sizes (resnet50/101/152) are converted once.
resnet18 at full size goes through the command line, loaded with archspec's import blocked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

import archspec  # noqa: E402
from archspec.backends import BuildOptions  # noqa: E402
from archspec.backends.onnx.backend import require  # noqa: E402
from archspec.errors import ArchspecError  # noqa: E402
from archspec.registry import default_registry  # noqa: E402
from backend_cases import ZOO, sample, shallow, spec  # noqa: E402
from reference import perturb_batchnorm, perturb_zero_tensors, relative_error, save_state_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
_converted: dict[str, float] = {}  # the network's source text -> its measured error


# One spec per structural kind runs by default (about 90 s on 2 cores); `--exhaustive` converts the whole
# zoo (about 6 minutes more: the exporter takes 5 to 15 s per network).
KINDS = {
    "seed_cnn_bn",
    "lenet5",
    "vgg11_lrn",
    "resnet18",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    "vit_b_16",
    "mixer_b16",
    "shufflenet_v2_x1_0",
}  # chunk and channel shuffle: a 5-D reshape, Gather and Transpose
CASES = [pytest.param(p, id=p.stem, marks=() if p.stem in KINDS else pytest.mark.exhaustive) for p in ZOO]


def export_with_weights(compiled: Any, reference: torch.nn.Module, out: Path) -> ort.InferenceSession:
    """The onnx backend's artifact of `compiled`, carrying `reference`'s tensors the way a user hands them
    over (--weights), opened in ONNX Runtime."""
    weights = save_state_dict(reference, out.with_suffix(".weights.pt"))
    options = dataclasses.replace(archspec.pipeline.build_options(compiled, 0, None), weights=weights)
    backend = default_registry().backend("onnx")
    backend.save(backend.build(compiled.graph, options), compiled.graph, out, options)
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])


def max_error(
    session: ort.InferenceSession,
    reference: torch.nn.Module,
    shape: Any,
    batches: tuple[int, ...],
    dtype: str = "float32",
) -> float:
    """The largest relative error of the session against `reference` over random inputs of these batches
    (token ids where the spec's input `dtype` is int64)."""
    error = 0.0
    for batch in batches:
        x = sample(tuple(shape), dtype, batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = reference(x)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert got.shape == expected.shape and float(expected.abs().max()) > 0
        error = max(error, relative_error(got, expected))
    return error


@pytest.mark.parametrize("path", CASES)
def test_zoo_onnx_matches_torch_backend(path: Path, tmp_path: Path) -> None:
    import onnx

    compiled = archspec.compile_spec(path, shallow(path.stem))
    registry = default_registry()
    # The network's forward and constructors, without the spec's name and description.
    key = registry.backend("torch-source").build(compiled.graph, BuildOptions()).text.split("def __init__", 1)[1]
    if key in _converted:  # the same network as an earlier spec's at these sizes
        return
    # Non-trivial batch-norm statistics, handed to the onnx backend the way a user would: --weights.
    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
    perturb_batchnorm(reference)
    perturb_zero_tensors(reference)
    out = tmp_path / f"{path.stem}.onnx"
    session = export_with_weights(compiled, reference, out)
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    error = max_error(session, reference, compiled.costs.input, (1, 3), compiled.costs.input_dtype)
    _converted[key] = error
    print(f"onnx {path.stem}: max relative error {error:.3g}")
    assert error <= TOLERANCE  # (a NaN error fails here too)


@pytest.mark.slow
def test_resnet18_cli_artifact_loads_without_archspec(tmp_path: Path) -> None:
    out = tmp_path / "resnet18.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "build", str(spec("resnet18")), "--backend", "onnx", "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["resnet18.onnx"]
    x = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(0))  # inside the spec's dynamic: range
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys; sys.modules['archspec'] = None\n"
        "import onnx, onnxruntime, torch\n"
        "onnx.checker.check_model(sys.argv[1], full_check=True)\n"
        "s = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "dims = [d.dim_param or d.dim_value for d in onnx.load(sys.argv[1]).graph.input[0].type.tensor_type.shape.dim]\n"
        "assert dims == ['batch', 3, 'height', 'width'], dims\n"
        "torch.save(torch.from_numpy(s.run(None, {'input': torch.load(sys.argv[2]).numpy()})[0]), sys.argv[3])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    reference = archspec.build(spec("resnet18")).eval()
    with torch.no_grad():
        error = relative_error(torch.load(tmp_path / "y.pt"), reference(x))
    print(f"onnx resnet18 (full size, 160x192 input): max relative error {error:.3g}")
    assert error <= TOLERANCE


def test_check_prints_the_per_layer_report(capsys) -> None:
    from archspec.cli import main

    assert main(["check", str(spec("vit_b_16")), "--backend", "onnx"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^encoder\.layers\.0\.self_attention +self_attention +fallback +decomposed into MatMul", out, re.M
    )
    assert "conv_proj" in out and "native    Conv" in out
    assert out.rstrip().endswith("onnx: can compile this spec: 117 native, 24 fallback, 0 unsupported layer(s)")


def test_unsupported_layer_is_a_located_error_and_writes_nothing(write_spec, tmp_path: Path, capsys) -> None:
    from archspec.cli import main

    path = write_spec(
        "archspec: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n  - {name: conv, op: conv2d, out: 4, kernel: 1}\n"
        "  - {name: pool, op: adaptive_maxpool2d, size: 3}\n  - {op: flatten}\n"
    )
    out = tmp_path / "out" / "t.onnx"
    assert main(["check", str(path), "--backend", "onnx"]) == 1
    assert re.search(
        r"^pool +adaptive_maxpool2d +unsupported +adaptive max pooling from 8x8 to 3x3", capsys.readouterr().out, re.M
    )
    assert main(["build", str(path), "--backend", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{path}:6:" in err and "AS803: layer 'pool' (op adaptive_maxpool2d): the onnx backend cannot compile it" in err
    )
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_toolchain_is_named() -> None:
    with pytest.raises(ArchspecError) as info:
        require(["onnx", "no_such_package_for_archspec"], "onnx", "onnx")
    assert info.value.code == "AS810" and "no_such_package_for_archspec" in info.value.message
    assert 'pip install "archspec[onnx]"' in info.value.message


def test_unknown_setting_is_refused(capsys) -> None:
    from archspec.cli import main

    assert (
        main(["build", str(spec("seed_cnn")), "--backend", "onnx", "--option", "opset=20", "-o", "/nonexistent/x"]) == 1
    )
    assert "AS809" in capsys.readouterr().err


def test_layer_norm_axis_layer_scale_and_pad_export(tmp_path: Path) -> None:
    """The ops no spec of the default KINDS uses: channel layer norm, layer scale (on channels and on the
    last axis), constant padding with a non-zero value."""
    compiled = archspec.compile_spec(ROOT / "tests/specs/layer_ops.yaml")
    registry = default_registry()
    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
    with torch.no_grad():  # away from the initial scales and affine parameters
        for p in reference.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    session = export_with_weights(compiled, reference, tmp_path / "layer_ops.onnx")
    error = max_error(session, reference, compiled.costs.input, (3,))
    print(f"onnx layer_ops: max relative error {error:.3g}")
    assert error <= TOLERANCE


def test_window_attention_ops_export(tmp_path: Path) -> None:
    """Swin's ops (tests/specs/window_ops.yaml): roll, strided slice, gather by a buffer, a learned tensor
    and a computed constant broadcast over the batch, matmul, attention with an additive bias, and the
    elementwise sub/abs/clamp/scale/exp/normalize, through ONNX Runtime at two batch sizes. The whole Swin
    specs run with --exhaustive (the zoo test above; 1 to 2 minutes each on 2 cores)."""
    compiled = archspec.compile_spec(ROOT / "tests/specs/window_ops.yaml")
    registry = default_registry()
    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
    session = export_with_weights(compiled, reference, tmp_path / "window_ops.onnx")
    assert max_error(session, reference, compiled.costs.input, (1, 3)) <= TOLERANCE
