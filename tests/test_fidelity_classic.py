"""Fidelity of the classic CNN specs against torchvision and timm: AlexNet, GoogLeNet, Inception v3,
Xception (timm's legacy_xception), SqueezeNet 1.0 / 1.1 and ShuffleNet v2.

Statically, on the meta device (no memory, no initialisation): every parameter and buffer shape of the
built module, in state-dict order, equals the reference's, so weights can pair by position; and every
row of the ShuffleNet v2 table counts parameters and MACs like torchvision's model (MACs from
torch's FlopCounterMode on the reference, an oracle independent of archspec's counting).

Numerically, each of the seven full-size models is built from the reference's state dict (`--weights`)
and computes the reference's outputs in eval mode, with He-scaled random weights (torchvision's own
init for GoogLeNet has std 0.01, which would leave the weights with almost no say in the output) and
non-trivial batch-norm statistics. Where the architecture allows, the input is smaller than the
reference's own size, at sizes where the ceil_mode poolings round up; the weights are the full model's.
The state dicts go through .pt files, which keep registration order. (A .safetensors file of timm's
Xception comes back with sorted keys, block10 before block2, and today's shape-and-order pairing then
mixes up the identical middle-flow blocks without an error; pairing by name, issue 8 section 3, fixes it.)

The chunk / channel-shuffle idiom of docs/spec-format.md is checked to be the family's own and to compute
torch's chunk and nn.ChannelShuffle exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
import torchvision

import archspec
from reference import REFERENCE, SPECS, assert_matches_reference, fidelity_params, on_meta, perturb_batchnorm


def _reference(name: str) -> nn.Module:
    """The reference of a spec, configured as tests/reference_models.json was measured."""
    if name == "xception":
        return timm.create_model("legacy_xception", pretrained=False)
    if name == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    if name == "inception_v3":
        return torchvision.models.inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    return getattr(torchvision.models, name)(weights=None)


def _random_reference(name: str, seed: int = 0) -> nn.Module:
    """The reference with every tensor drawn here, none left to its constructor (whose init would only be
    overwritten, and costs more than the rest of the test for the large models): conv and linear weights
    ~ N(0, 2 / fan_in), so activations keep their scale through the depth and every tensor, swapped or
    wrong, shows in the output (torchvision's own init for GoogLeNet has std 0.01); biases ~ N(0, 0.1^2);
    batch norm with non-trivial statistics and affine parameters."""
    with on_meta():
        model = _reference(name)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2 / m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                assert m.num_batches_tracked is not None
                m.num_batches_tracked.zero_()
            else:
                assert not any(True for _ in m.parameters(recurse=False)) and not any(
                    True for _ in m.buffers(recurse=False)
                ), f"{type(m).__name__} holds tensors this test does not draw"
    perturb_batchnorm(model, seed)
    return model


@pytest.mark.parametrize(
    "name", ["alexnet", "googlenet", "inception_v3", "xception", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2_x1_0"]
)
def test_state_dict_shapes_in_reference_order(name: str) -> None:
    """Same tensors, same shapes, same order: pairing by position is exact."""
    with on_meta():
        reference = _reference(name)
        ours = archspec.build(SPECS / f"{name}.yaml")
    shapes = lambda m: [tuple(t.shape) for t in m.state_dict().values()]
    assert shapes(ours) == shapes(reference)
    norms = lambda m: [(x.eps, x.momentum) for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert norms(ours) == norms(reference)
    dropouts = lambda m: [x.p for x in m.modules() if isinstance(x, nn.Dropout)]
    assert dropouts(ours) == dropouts(reference)


@pytest.mark.parametrize(
    "variant, resolution",
    [
        ("shufflenet_v2_x0_5", 224),
        ("shufflenet_v2_x1_5", 224),
        ("shufflenet_v2_x2_0", 224),
        ("shufflenet_v2_x1_0", 97),  # odd sides at every stride-2 unit: 97 -> 49 -> 25 -> 13 -> 7 -> 4
    ],
)
def test_shufflenet_variants_count_like_torchvision(variant: str, resolution: int) -> None:
    """The rows of the ShuffleNet v2 table without a thin spec (whose figures tests/test_zoo.py checks),
    and the thin spec's row at an odd size: parameters, MACs and output against torchvision's model."""
    costs = archspec.summary(
        SPECS / "families" / "shufflenet_v2.yaml", variant=variant, resolution=resolution, num_classes=10
    )
    with torch.device("meta"):
        reference = getattr(torchvision.models, variant)(weights=None, num_classes=10)
        with FlopCounterMode(display=False) as counter:
            out = reference(torch.empty(1, 3, resolution, resolution))
    assert costs.params == sum(p.numel() for p in reference.parameters())
    assert costs.macs == counter.get_total_flops() // 2
    assert tuple(costs.output) == tuple(out.shape[1:])


def test_squeezenet1_1_counts_like_torchvision() -> None:
    """The second row of the SqueezeNet table, at an odd size where the ceil_mode poolings round up."""
    costs = archspec.summary(SPECS / "families" / "squeezenet.yaml", variant="squeezenet1_1", resolution=102)
    with torch.device("meta"):
        reference = torchvision.models.squeezenet1_1(weights=None)
        with FlopCounterMode(display=False) as counter:
            reference(torch.empty(1, 3, 102, 102))
    assert costs.macs == counter.get_total_flops() // 2
    assert costs.params == REFERENCE["squeezenet1_1"]["params"]


# name -> input side for the numerical check: the reference's own size where the model is cheap
# (AlexNet's cost is its 61M weights, not its forward); elsewhere a smaller side at which googlenet's and
# squeezenet's ceil_mode poolings round up (96, 102) and the last Inception / Xception grids are 2x2 / 3x3.
FIDELITY = {
    "alexnet": 224,
    "googlenet": 96,
    "inception_v3": 107,
    "xception": 71,
    "squeezenet1_0": 102,
    "squeezenet1_1": 102,
    "shufflenet_v2_x1_0": 224,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(list(FIDELITY)))
def test_matches_reference(name: str, tmp_path: Path) -> None:
    reference = _random_reference(name)
    resolution = FIDELITY[name]
    overrides = {} if resolution == REFERENCE[name]["input"][1] else {"resolution": resolution}
    assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path, **overrides)


def _worked_example_blocks() -> str:
    """The `blocks:` of the chunk / channel-shuffle worked example in docs/spec-format.md, verbatim."""
    text = (SPECS.parent / "docs" / "spec-format.md").read_text()
    section = text.split("## Worked example: chunk and channel shuffle", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_worked_example_is_the_family_and_computes_torch_chunk_and_channel_shuffle(write_spec) -> None:
    """The documented idiom is the one ShuffleNet v2's family uses, and computes exactly torch's
    x.chunk(2, dim=1) and nn.ChannelShuffle, for 3 groups as well as ShuffleNet's 2."""
    blocks = _worked_example_blocks()
    family = (SPECS / "families" / "shufflenet_v2.yaml").read_text()
    for block in blocks.split("\n  # ")[1:]:  # each documented block, comment line included, is in the family
        assert "  # " + block.rstrip() in family
    spec = write_spec(
        "archspec: 1\nname: idiom\ninput: [6, 4, 5]\n"
        + blocks
        + """
layers:
  - {name: first, op: chunk, from: input, index: 0}
  - {name: second, op: chunk, from: input, index: 1}
  - {name: shuffled, op: channel_shuffle, from: input, groups: 3}
  - {name: out, op: concat, from: [first, second, shuffled], axis: 0}
"""
    )
    costs = archspec.summary(spec)
    assert (costs.params, costs.macs, tuple(costs.output)) == (0, 0, (12, 4, 5))
    x = torch.randn(2, 6, 4, 5)
    first, second = x.chunk(2, dim=1)
    expected = torch.cat([first, second, nn.ChannelShuffle(3)(x)], dim=1)
    assert torch.equal(archspec.build(spec)(x), expected)
