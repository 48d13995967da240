"""Every structural kind exports: the .pt2 reproduces the module's eval outputs at any batch size."""

from pathlib import Path

import pytest
import torch

import archspec
from reference import SPECS

CASES = {  # one spec per structural kind, at a small resolution to keep export quick
    "vgg11_lrn": 32,
    "resnet50": 64,
    "densenet121": 64,
    "efficientnet_b0": 64,
    "vit_b_16": 32,
    "mixer_b16": 32,
    "unet": 32,  # an encoder-decoder: multi-input blocks, transposed convolutions, a [classes, H, W] output
    "lraspp_mobilenet_v3_large": 64,  # DeepLabV3 below, at a second resolution
    "swin_t": 32,  # windows, roll, gather and buffers the spec computes (registered buffers in the program)
}
WIDTH = {"unet": {"base_width": 8}}  # its structure at a fraction of the weights (31M at width 64)
# The onnx backend exports every kind through torch.export in the default run too; these here add the
# .pt2 round trip, so the default run keeps a residual network and a transformer.
DEFAULT = {"resnet50", "vit_b_16"}  # unet (12 s): tests/test_upsampling_ops.py exports its new ops by default


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in DEFAULT else pytest.mark.exhaustive) for n in sorted(CASES)]
)
def test_exported_program_matches_module(name: str, tmp_path: Path) -> None:
    spec, resolution = SPECS / f"{name}.yaml", CASES[name]
    overrides = {"resolution": resolution, "num_classes": 7, **WIDTH.get(name, {})}
    out = archspec.build_file(spec, tmp_path / f"{name}.pt2", overrides=overrides)
    module = archspec.build(spec, **overrides).eval()
    program = torch.export.load(out).module()
    for batch in (1, 3):
        x = torch.randn(batch, 3, resolution, resolution)
        with torch.no_grad():
            torch.testing.assert_close(program(x), module(x), rtol=1e-5, atol=1e-5)


@pytest.mark.exhaustive
def test_segmentation_output_follows_a_dynamic_resolution(tmp_path: Path) -> None:
    """The class map is upsampled to the input's own [H, W] (interpolate's second input), so one .pt2 serves
    every size of the resolution range, H and W independently."""
    spec = SPECS / "deeplabv3_resnet50.yaml"
    out = archspec.build_file(spec, tmp_path / "deeplab.pt2", overrides={"resolution": 64, "num_classes": 3})
    module = archspec.build(spec, resolution=64, num_classes=3).eval()
    program = torch.export.load(out).module()
    for batch in (1, 3):
        x = torch.randn(batch, 3, 96, 72)
        with torch.no_grad():
            got = program(x)
            torch.testing.assert_close(got, module(x), rtol=1e-5, atol=1e-5)
        assert got.shape == (batch, 3, 96, 72)
