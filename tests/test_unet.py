"""The unet family against a hand-written U-Net (tests/unet_reference.py, milesial/Pytorch-UNet's modules with
depth and width as parameters): parameters, MACs (FlopCounterMode / 2) and output shape at every depth and
both upsamplings, the figures specs/unet.yaml states, tensor names that pair by name, and the same outputs
(eval mode, perturbed batch-norm statistics) after `--weights`.

The figures are measured on the meta device (no arithmetic); outputs are compared at width 8, side 32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from reference import SPECS, assert_matches_reference
from unet_reference import UNet

FAMILY = SPECS / "families/unet.yaml"


def measured(reference: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, int, list[int]]:
    """(params, MACs, output shape) of one sample, as the reference figures of the zoo are measured."""
    params = sum(p.numel() for p in reference.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = reference.to("meta")(torch.empty(1, *shape, device="meta"))
    return params, counter.get_total_flops() // 2, list(out.shape[1:])


def test_thin_spec_states_the_reference_figures() -> None:
    compiled = archspec.compile_spec(SPECS / "unet.yaml")
    expect = compiled.resolved.expect
    assert expect is not None and expect.input == [3, 256, 256]
    with torch.device("meta"):
        reference = UNet(3, 2, bilinear=False)
    assert (expect.params, expect.macs, expect.output) == measured(reference, (3, 256, 256))
    costs = compiled.costs
    assert (costs.params, costs.macs, list(costs.output)) == (expect.params, expect.macs, expect.output)


@pytest.mark.parametrize("bilinear", [False, True], ids=["transposed", "bilinear"])
@pytest.mark.parametrize("depth", [1, 3, 5])  # depth 4: the thin spec's figures and the outputs below
def test_figures_match_the_reference_at_every_depth(depth: int, bilinear: bool) -> None:
    overrides = dict(depth=depth, bilinear=bilinear, base_width=16, resolution=64, num_classes=3, in_channels=1)
    costs = archspec.summary(FAMILY, **overrides)
    with torch.device("meta"):
        reference = UNet(1, 3, bilinear=bilinear, depth=depth, base_width=16)
    assert (costs.params, costs.macs, list(costs.output)) == measured(reference, (1, 64, 64))


@pytest.mark.parametrize("depth, bilinear", [(4, False), (4, True), (2, False)], ids=["transposed", "bilinear", "depth2"])
def test_outputs_match_the_reference_after_weights(tmp_path: Path, depth: int, bilinear: bool) -> None:
    overrides = dict(depth=depth, bilinear=bilinear, base_width=8, resolution=32)
    reference = UNet(3, 2, bilinear=bilinear, depth=depth, base_width=8)
    ours = archspec.build(FAMILY, **overrides)
    # every tensor pairs by name: the same names, in the same order, of the same shapes
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in reference.state_dict().items()]
    assert_matches_reference(FAMILY, reference, tmp_path, **overrides)


def test_resolution_must_be_a_multiple_of_two_to_the_depth(capsys) -> None:
    from archspec.cli import main

    assert main(["validate", str(SPECS / "unet.yaml"), "--set", "resolution=100"]) == 1
    err = capsys.readouterr().err
    assert "unet.yaml:" in err and "AS209" in err and "multiple of 2**depth" in err
