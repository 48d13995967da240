"""Every structural kind exports: the .pt2 reproduces the module's eval outputs at any batch size."""

from pathlib import Path

import pytest
import torch

import archspec
from reference import SPECS

CASES = {  # one spec per structural kind, at a small resolution to keep export quick
    "vgg11_lrn": 32, "resnet50": 64, "densenet121": 64, "efficientnet_b0": 64, "vit_b_16": 32, "mixer_b16": 32,
    "swin_t": 32,  # windows, roll, gather and buffers the spec computes (registered buffers in the program)
}
# The onnx backend exports every kind through torch.export in the default run too; these here add the
# .pt2 round trip, so the default run keeps a residual network and a transformer.
DEFAULT = {"resnet50", "vit_b_16"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in DEFAULT else pytest.mark.exhaustive) for n in sorted(CASES)])
def test_exported_program_matches_module(name: str, tmp_path: Path) -> None:
    spec, resolution = SPECS / f"{name}.yaml", CASES[name]
    out = archspec.build_file(spec, tmp_path / f"{name}.pt2", overrides={"resolution": resolution, "num_classes": 7})
    module = archspec.build(spec, resolution=resolution, num_classes=7).eval()
    program = torch.export.load(out).module()
    for batch in (1, 3):
        x = torch.randn(batch, 3, resolution, resolution)
        with torch.no_grad():
            torch.testing.assert_close(program(x), module(x), rtol=1e-5, atol=1e-5)
