"""Fidelity of the MobileNet v1/v2/v3, MNASNet, SE-ResNet and ConvNeXt specs against timm and torchvision.

Static, on the meta device (no memory, no initialisation), for every row of each family's variant table:
parameter count, parameter and buffer shapes in state-dict order (what strictly positional pairing of
checkpoint tensors relies on), batch-norm eps/momentum,
dropout and drop-path probabilities equal the reference constructor's.

Numeric, in eval mode, with the reference's weights loaded through `weights=`: the nine reference
models at full size (every layer, every width), at a reduced input resolution where the network takes
it (the classifier head pools globally, so only the feature-map sides shrink). Batch-norm statistics,
layer-norm affine parameters and ConvNeXt's layer scales are randomised first: at their initial values
(scale 1e-6) every ConvNeXt block would be close to the identity and the comparison would prove little.
ConvNeXt-S/B/L (50M to 198M parameters) run whole, at 32 px and batch 1 (about 17 s for the three);
`--exhaustive` adds each with one block per stage, which isolates the widths from the depths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from torch import nn
import torchvision

import archspec
from archspec.backends.torch.modules import DropPath
from reference import SPECS, assert_matches_reference, fidelity_params, on_meta

FAMILIES = SPECS / "families"


def _timm(name: str) -> Callable[..., nn.Module]:
    return lambda **kwargs: timm.create_model(name, pretrained=False, **kwargs)


def _torchvision(name: str) -> Callable[..., nn.Module]:
    return lambda **kwargs: getattr(torchvision.models, name)(weights=None, **kwargs)


# family spec, variant -> the reference constructor of that row
VARIANTS: dict[tuple[str, str], Callable[..., nn.Module]] = {
    ("mobilenet_v1", "mobilenet_v1"): _timm("mobilenetv1_100"),
    ("mobilenet_v1", "mobilenet_v1_125"): _timm("mobilenetv1_125"),
    ("mobilenet_v2", "mobilenet_v2"): _torchvision("mobilenet_v2"),
    ("mobilenet_v3", "mobilenet_v3_large"): _torchvision("mobilenet_v3_large"),
    ("mobilenet_v3", "mobilenet_v3_small"): _torchvision("mobilenet_v3_small"),
    **{("mnasnet", f"mnasnet{a}"): _torchvision(f"mnasnet{a}") for a in ("0_5", "0_75", "1_0", "1_3")},
    **{
        ("senet", v): _timm(f"legacy_{v}")
        for v in (
            "seresnet18",
            "seresnet34",
            "seresnet50",
            "seresnet101",
            "seresnet152",
            "seresnext26_32x4d",
            "seresnext50_32x4d",
            "seresnext101_32x4d",
        )
    },
    **{("convnext", f"convnext_{v}"): _torchvision(f"convnext_{v}") for v in ("tiny", "small", "base", "large")},
}


def _drop_path_probs(model: nn.Module) -> list[float]:
    return [
        float(m.p) for m in model.modules() if isinstance(m, (DropPath, torchvision.ops.StochasticDepth)) and m.p > 0
    ]


# The deeper SENet rows repeat the kinds of block the first three check (basic, bottleneck, resnext);
# they cost seconds each on the meta device, so they run with --exhaustive.
DEEP = {"seresnet34", "seresnet101", "seresnet152", "seresnext50_32x4d", "seresnext101_32x4d"}


@pytest.mark.parametrize(
    "family, variant",
    [pytest.param(f, v, id=v, marks=pytest.mark.exhaustive if v in DEEP else ()) for f, v in sorted(VARIANTS)],
)
def test_variant_structure_matches_reference(family: str, variant: str) -> None:
    with on_meta():  # shapes and hyper-parameters only
        reference = VARIANTS[family, variant](num_classes=10)
        ours = archspec.build(FAMILIES / f"{family}.yaml", variant=variant, num_classes=10)
    costs = archspec.summary(FAMILIES / f"{family}.yaml", variant=variant, num_classes=10)
    assert costs.params == sum(p.numel() for p in reference.parameters()) == sum(p.numel() for p in ours.parameters())
    shapes = lambda tensors: [tuple(t.shape) for t in tensors]
    # In state-dict order: ConvNeXt's layer scale, registered on the block itself, comes before the block's convs.
    assert shapes(ours.parameters()) == shapes(reference.parameters())
    assert shapes(ours.buffers()) == shapes(reference.buffers())
    norms = lambda m: [(x.eps, x.momentum) for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert norms(ours) == norms(reference)
    layer_norms = lambda m: [x.eps for x in m.modules() if isinstance(x, nn.LayerNorm)]
    assert layer_norms(ours) == layer_norms(reference)
    dropouts = lambda m: [x.p for x in m.modules() if isinstance(x, nn.Dropout) and x.p > 0]
    if family != "senet":  # timm's SENet applies its drop_rate (0.2) functionally, not as a module
        assert dropouts(ours) == dropouts(reference)
    assert _drop_path_probs(ours) == pytest.approx(_drop_path_probs(reference), abs=1e-12)


def _randomise_norms_and_scales(module: nn.Module, seed: int = 3) -> None:
    """Layer-norm affine parameters and ConvNeXt layer scales away from their initial 1 / 0 / 1e-6."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        for m in module.modules():
            if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


# All are /32 networks with global pooling: at 32 px the last stage is 1x1 and every layer still runs
# (SE-ResNet's ceil-mode pooling included: 16 -> 8).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v1": _timm("mobilenetv1_100"),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large"),
    "mnasnet1_0": _torchvision("mnasnet1_0"),
    "seresnet50": _timm("legacy_seresnet50"),
    "convnext_tiny": _torchvision("convnext_tiny"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(sorted(MODELS)))
def test_full_size_model_matches_reference(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = MODELS[name]()
    _randomise_norms_and_scales(reference)
    assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path, resolution=32)


def _convnext_one_block_per_stage(variant: str) -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    widths = archspec.compile_spec(SPECS / f"{variant}.yaml").resolved.spec.variants[variant]["widths"]
    settings = [CNBlockConfig(w, nxt, 1) for w, nxt in zip(widths, [*widths[1:], None])]
    return ConvNeXt(settings, stochastic_depth_prob=0.5)


@pytest.mark.exhaustive  # the whole models run by default (below); this isolates widths from depth
@pytest.mark.parametrize("variant", ["convnext_small", "convnext_base", "convnext_large"])
def test_convnext_variant_widths_match_torchvision(variant: str, tmp_path: Path) -> None:
    """Every width and op configuration of the variant, one block per stage (the blocks of a stage are
    the same block repeated; the full depths are checked statically above and numerically with
    --exhaustive). By default only Large, the widest: Small has Tiny's widths, Base sits between."""
    torch.manual_seed(0)
    reference = _convnext_one_block_per_stage(variant)
    _randomise_norms_and_scales(reference)
    assert_matches_reference(SPECS / f"{variant}.yaml", reference, tmp_path, resolution=32, depths=[1, 1, 1, 1])


@pytest.mark.slow
@pytest.mark.parametrize("variant", fidelity_params(["convnext_small", "convnext_base", "convnext_large"]))
def test_full_size_convnext_matches_torchvision(variant: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = _torchvision(variant)()
    _randomise_norms_and_scales(reference)
    assert_matches_reference(SPECS / f"{variant}.yaml", reference, tmp_path, resolution=32, batch=1)


def test_option_a_shortcut_matches_the_reference_lambda(write_spec) -> None:
    """`pad` on channels after a strided subsample is the CIFAR ResNet's option-A shortcut, written in the
    reference code as F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)."""
    path = write_spec(
        "archspec: 1\nname: option_a\nparams: {planes: 16}\ninput: [8, 9, 9]\nlayers:\n"
        "  - {name: subsample, op: maxpool2d, kernel: 1, stride: 2}\n"
        "  - {name: shortcut, op: pad, widths: [['${planes // 4}', '${planes // 4}'], [0, 0], [0, 0]]}\n"
    )
    x = torch.randn(3, 8, 9, 9)
    expected = nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 4), "constant", 0)
    assert archspec.summary(path).output == (16, 5, 5)
    torch.testing.assert_close(archspec.build(path)(x), expected, rtol=0, atol=0)
