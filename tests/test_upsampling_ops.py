"""The upsampling ops of decoders, interpolate / upsample and conv_transpose2d: shapes agree with torch's,
parameters and MACs with nn.ConvTranspose2d and FlopCounterMode, arguments are checked with located errors,
and every backend computes what torch computes (tests/specs/upsampling_ops.yaml holds every form of
interpolate: scale, [h, w] scale, size, nearest-exact, the size of another layer, here the input; and a
grouped, dilated conv_transpose2d with output padding)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.backends import BuildOptions
from archspec.cli import main
from archspec.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
UPSAMPLING = ROOT / "tests/specs/upsampling_ops.yaml"
SPEC = "archspec: 1\nname: t\ninput: [3, {h}, {w}]\nlayers:\n  - {{name: up, op: {op}, {args}}}\n"


@pytest.mark.parametrize(
    "h, w, args, kwargs",
    [
        (7, 9, "scale: 2", dict(scale_factor=2)),
        (7, 9, "scale: 0.5, mode: bilinear", dict(scale_factor=0.5, mode="bilinear")),
        (7, 9, "scale: 1.7, mode: nearest-exact", dict(scale_factor=1.7, mode="nearest-exact")),
        (5, 11, "scale: [1.5, 0.3]", dict(scale_factor=(1.5, 0.3))),
        (
            10,
            10,
            "scale: 0.29, mode: bilinear, align_corners: true",
            dict(scale_factor=0.29, mode="bilinear", align_corners=True),
        ),
        (
            3,
            4,
            "size: [8, 5], mode: bilinear, align_corners: false",
            dict(size=(8, 5), mode="bilinear", align_corners=False),
        ),
        (3, 4, "size: 6", dict(size=6)),
    ],
)
@pytest.mark.parametrize("op", ["interpolate", "upsample"])
def test_shape_and_output_are_torchs(write_spec, op: str, h: int, w: int, args: str, kwargs: dict) -> None:
    path = write_spec(SPEC.format(op=op, h=h, w=w, args=args))
    costs = archspec.summary(path)
    x = torch.randn(2, 3, h, w)
    expected = F.interpolate(x, **kwargs)
    assert costs.output == tuple(expected.shape[1:]) and costs.macs == 0 and costs.params == 0
    torch.testing.assert_close(archspec.build(path)(x), expected, rtol=0, atol=0)
    if op == "upsample":  # nn.Upsample is the same computation
        torch.testing.assert_close(torch.nn.Upsample(**kwargs)(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "args, code, message",
    [
        ("scale: 2, size: 4", "AS403", "give scale or size, not both"),
        ("scale: 2, align_corners: true", "AS403", "align_corners applies to mode bilinear only"),
        ("scale: 0", "AS403", "greater than 0"),
        ("mode: bicubic, scale: 2", "AS403", "mode"),
        ("mode: bilinear", "AS501", "needs exactly one target"),
        ("scale: 0.01", "AS501", "an empty map"),
    ],
)
def test_bad_arguments_are_located_errors(write_spec, capsys, args: str, code: str, message: str) -> None:
    path = write_spec(SPEC.format(op="interpolate", h=8, w=8, args=args))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5:" in err and f": {code}: " in err and message in err and "Traceback" not in err, err


def test_a_second_input_gives_the_size_and_excludes_scale(write_spec, capsys) -> None:
    text = (
        "archspec: 1\nname: t\ninput: [3, 9, 13]\nlayers:\n  - {name: pool, op: maxpool2d, kernel: 2}\n"
        "  - {name: back, op: interpolate, from: [pool, input]%s}\n"
    )
    assert archspec.summary(write_spec(text % "")).output == (3, 9, 13)
    path = write_spec(text % ", scale: 2", name="both.yaml")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6:5: AS501:" in err and "exactly one target" in err and "(it has 2)" in err


@pytest.mark.parametrize(
    "in_channels, args, kwargs",
    [
        (4, "out: 6, kernel: 2, stride: 2", dict(kernel_size=2, stride=2)),
        (
            4,
            "out: 6, kernel: 3, stride: 2, padding: 1, output_padding: 1, bias: false",
            dict(kernel_size=3, stride=2, padding=1, output_padding=1, bias=False),
        ),
        (
            6,
            "out: 4, kernel: [3, 2], stride: [2, 3], padding: [1, 0], output_padding: [1, 2], groups: 2, dilation: [1, 2]",
            dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(1, 2)),
        ),
        (
            8,
            "out: 8, kernel: 4, stride: 1, padding: 2, groups: 8, dilation: 3",
            dict(kernel_size=4, stride=1, padding=2, groups=8, dilation=3),
        ),
    ],
)
def test_conv_transpose2d_is_nn_convtranspose2d(write_spec, in_channels: int, args: str, kwargs: dict) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    text = (
        f"archspec: 1\nname: t\ninput: [{in_channels}, 5, 7]\nlayers:\n  - {{name: up, op: conv_transpose2d, {args}}}\n"
    )
    path = write_spec(text)
    costs = archspec.summary(path)
    out = int(args.split(",")[0].removeprefix("out: "))
    reference = torch.nn.ConvTranspose2d(in_channels, out, **kwargs)
    x = torch.randn(2, in_channels, 5, 7)
    with FlopCounterMode(display=False) as counter:
        expected = reference(x)
    assert costs.output == tuple(expected.shape[1:])
    assert costs.params == sum(p.numel() for p in reference.parameters())
    assert costs.macs * 2 * 2 == counter.get_total_flops()  # per sample; FlopCounterMode counts 2 per MAC, batch 2
    ours = archspec.build(path)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (f"up.{k}", v.shape) for k, v in reference.state_dict().items()
    ]
    ours.load_state_dict({f"up.{k}": v for k, v in reference.state_dict().items()})
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            "out: 4, kernel: 3, stride: 2, output_padding: 2",
            "output_padding 2 along H, which must be smaller than its stride 2",
        ),
        ("out: 3, kernel: 3, groups: 2", "groups=2, which must divide"),
        ("out: 4, kernel: 3, padding: 3", "leaves no output along H"),
    ],
)
def test_bad_conv_transpose2d_is_a_located_error(write_spec, capsys, args: str, message: str) -> None:
    path = write_spec(
        f"archspec: 1\nname: t\ninput: [4, 2, 2]\nlayers:\n  - {{name: up, op: conv_transpose2d, {args}}}\n"
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5:5: AS501:" in err and message in err, err


def test_every_backend_matches_torch(tmp_path: Path) -> None:
    """torch (eager, and the exported .pt2 at two batch sizes), torch-source and ONNX Runtime against torch's
    own F.interpolate / nn.ConvTranspose2d."""
    compiled = archspec.compile_spec(UPSAMPLING)
    registry = default_registry()
    options = archspec.pipeline.build_options(compiled, 0, None)
    model = registry.backend("torch").build(compiled.graph, options).eval()
    conv, deconv = model.conv, model.deconv
    assert isinstance(deconv, torch.nn.ConvTranspose2d)

    def expected(x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(conv(x), scale_factor=2, mode="bilinear", align_corners=True)
        h = F.interpolate(F.interpolate(h, scale_factor=(1.5, 0.75)), size=(7, 9), mode="nearest-exact")
        h = deconv(F.interpolate(h, scale_factor=1.3, mode="bilinear"))
        return F.interpolate(h, size=x.shape[-2:], mode="bilinear")

    xs = [torch.randn(n, 3, 10, 12, generator=torch.Generator().manual_seed(n)) for n in (1, 3)]
    with torch.no_grad():
        references = [expected(x) for x in xs]
        for x, y in zip(xs, references):
            torch.testing.assert_close(model(x), y, rtol=0, atol=0)
    # torch-source: the same calls, written out
    code = registry.backend("torch-source").build(compiled.graph, BuildOptions()).text
    namespace: dict = {}
    exec(compile(code, "upsampling_ops", "exec"), namespace)
    ours = namespace[ast.parse(code).body[-1].name]().eval()  # type: ignore[attr-defined]
    ours.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(xs[1]), references[1], rtol=0, atol=0)
    # the default backend's .pt2 (torch.export with a dynamic batch), and ONNX
    torch_backend = registry.backend("torch")
    torch_backend.save(model, compiled.graph, tmp_path / "u.pt2", options)
    exported = torch.export.load(str(tmp_path / "u.pt2")).module()
    with torch.no_grad():
        for x, y in zip(xs, references):
            torch.testing.assert_close(exported(x), y, rtol=0, atol=0)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx_backend = registry.backend("onnx")
    onnx_backend.save(onnx_backend.build(compiled.graph, options), compiled.graph, tmp_path / "u.onnx", options)
    session = ort.InferenceSession(str(tmp_path / "u.onnx"), providers=["CPUExecutionProvider"])
    for x, y in zip(xs, references):  # the onnx backend builds the same module: the same seed
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert float((got - y).abs().max() / y.abs().max()) <= 1e-5
