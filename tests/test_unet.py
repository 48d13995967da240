"""The unet family against a hand-written U-Net (tests/unet_reference.py, milesial/Pytorch-UNet's modules with
depth and width as parameters): parameters, MACs (FlopCounterMode / 2) and output shape at every depth and
both upsamplings, the figures specs/unet.yaml states, tensor names that pair by name, and the same outputs
(eval mode, perturbed batch-norm statistics) after `--weights`.

The figures are measured on the meta device (no arithmetic); outputs are compared at depth 4, width 8, side
16 (other depths' wiring shows in their figures: a skip from the wrong level changes the concatenated width).
`archspec build specs/unet.yaml --weights` at full size gives a .pt2 equal to the module (relative error 0 at
batch 1 and 2, both upsamplings); that takes minutes on 2 cores, so it is not a default test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.registry import default_registry
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


@pytest.mark.parametrize("bilinear", [False, True], ids=["transposed", "bilinear"])
def test_outputs_match_the_reference_after_weights(tmp_path: Path, bilinear: bool) -> None:
    overrides = dict(bilinear=bilinear, base_width=8, resolution=16)  # a 1x1 map at the bottom
    reference = UNet(3, 2, bilinear=bilinear, base_width=8)
    # every learned tensor pairs by name: the spec's tensors are the reference's, in its order, of its shapes
    graph = archspec.compile_spec(FAMILY, overrides).graph
    registry = default_registry()
    ours = [
        (f"{node.name}.{tensor}", shape)
        for node in graph.ops
        for tensor, shape in registry.op(node.op).weights(node.params, graph.input_shapes(node)).items()
    ]
    assert ours == [(name, tuple(p.shape)) for name, p in reference.named_parameters()]
    assert_matches_reference(FAMILY, reference, tmp_path, **overrides)


def test_resolution_must_be_a_multiple_of_two_to_the_depth(capsys) -> None:
    from archspec.cli import main

    assert main(["validate", str(SPECS / "unet.yaml"), "--set", "resolution=100"]) == 1
    err = capsys.readouterr().err
    assert "unet.yaml:" in err and "AS209" in err and "multiple of 2**depth" in err
