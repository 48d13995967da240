"""Fidelity of the ViT and MLP-Mixer specs against torchvision's VisionTransformer and timm's MlpMixer.

The full-size vit_b_16 and mixer_b16 are checked in eval mode with the reference's weights. Small
configurations of the same classes check the options the named variants leave off (ViT's
representation_size, Mixer's stem_norm) and training behaviour: with dropout, attention dropout and
drop path switched on and the same seed, both sides draw the same random masks in the same order, so
train-mode outputs agree too.

"""

from __future__ import annotations

import pytest
import timm
from timm.models.mlp_mixer import MlpMixer
import torch
import torchvision
from torchvision.models.vision_transformer import VisionTransformer

import archspec
from reference import REFERENCE, SPECS, assert_matches_reference, on_meta

VIT = ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"]
MIXER = ["mixer_s32", "mixer_s16", "mixer_b32", "mixer_b16", "mixer_l32", "mixer_l16", "mixer_h14"]


@pytest.mark.parametrize("variant", VIT)
def test_vit_variants_count_like_torchvision(variant: str) -> None:
    with on_meta():  # shapes only: no memory, no initialisation
        reference = getattr(torchvision.models, variant)(weights=None, num_classes=10)
    costs = archspec.summary(SPECS / "families" / "vit.yaml", variant=variant, num_classes=10)
    assert costs.params == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("variant", MIXER)
def test_mixer_variants_count_like_timm(variant: str) -> None:
    with on_meta():
        if variant == "mixer_h14":  # in the paper, not packaged by timm: its MlpMixer with the paper's sizes
            reference = MlpMixer(num_classes=10, patch_size=14, num_blocks=32, embed_dim=1280)
        else:
            reference = timm.create_model(f"{variant}_224", pretrained=False, num_classes=10)
    costs = archspec.summary(SPECS / "families" / "mixer.yaml", variant=variant, num_classes=10)
    assert costs.params == sum(p.numel() for p in reference.parameters())


@pytest.mark.slow
@pytest.mark.fidelity("vit_b_16")
def test_vit_b_16_matches_torchvision(tmp_path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.vit_b_16(weights=None)
    # torchvision zero-initialises the head: give it weights so the comparison sees the whole network.
    with torch.no_grad():
        reference.heads.head.weight.normal_(std=0.02)
        reference.heads.head.bias.normal_(std=0.02)
    assert_matches_reference(SPECS / "vit_b_16.yaml", reference, tmp_path)


@pytest.mark.slow
@pytest.mark.fidelity("mixer_b16")
def test_mixer_b16_matches_timm(tmp_path) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("mixer_b16_224", pretrained=False)
    with torch.no_grad():  # timm zero-initialises the head too
        reference.head.weight.normal_(std=0.02)
        reference.head.bias.normal_(std=0.02)
    assert_matches_reference(SPECS / "mixer_b16.yaml", reference, tmp_path, suffix=".safetensors")  # as timm ships


def test_vit_b_16_with_ten_classes() -> None:
    model = archspec.build(SPECS / "vit_b_16.yaml", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 10)
    costs = archspec.summary(SPECS / "vit_b_16.yaml", num_classes=10)
    assert costs.params == REFERENCE["vit_b_16"]["params"] - 990 * 769  # only the head shrinks
    assert list(costs.output) == [10]


SMALL_VIT = dict(resolution=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)


@pytest.mark.parametrize("train", [False, True])
def test_small_vit_with_options_matches_torchvision_class(train: bool, tmp_path) -> None:
    torch.manual_seed(0)
    options = dict(dropout=0.2, attention_dropout=0.3, representation_size=16)
    reference = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10, **options
    )
    with torch.no_grad():
        reference.class_token.normal_()
        reference.heads.head.weight.normal_(std=0.1)
    assert_matches_reference(SPECS / "vit_b_16.yaml", reference, tmp_path, train=train, **SMALL_VIT, **options)


@pytest.mark.parametrize("train", [False, True])
def test_small_mixer_with_options_matches_timm_class(train: bool, tmp_path) -> None:
    torch.manual_seed(0)
    options = dict(stem_norm=True, drop_rate=0.2, proj_drop_rate=0.3, drop_path_rate=0.25)
    reference = MlpMixer(num_classes=10, img_size=32, patch_size=8, num_blocks=2, embed_dim=32, **options)
    with torch.no_grad():
        reference.head.weight.normal_(std=0.1)
    assert_matches_reference(
        SPECS / "mixer_b16.yaml",
        reference,
        tmp_path,
        train=train,
        resolution=32,
        patch_size=8,
        num_blocks=2,
        embed_dim=32,
        num_classes=10,
        **options,
    )


def test_small_vit_from_safetensors(tmp_path) -> None:
    """A small ViT from .safetensors weights, whose keys come back sorted rather than in registration order."""
    torch.manual_seed(0)
    reference = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    with torch.no_grad():
        reference.heads.head.weight.normal_(std=0.1)
    assert_matches_reference(SPECS / "vit_b_16.yaml", reference, tmp_path, suffix=".safetensors", **SMALL_VIT)
