"""Fidelity of the segmentation specs against torchvision.models.segmentation (aux_loss=False).

The backbones are the classification families' (ResNet with `replace_stride_with_dilation`, MobileNetV3
with `dilated`), checked first as classifiers against torchvision's dilated ResNet and MobileNetV3. The
networks (backbone, FCN / DeepLabV3 / Lite R-ASPP head, bilinear upsampling to the input size) then give
torchvision's `out` map from its own state dict, at small resolutions and other class counts: by default
DeepLabV3 at depth [1, 1, 1, 1] (torchvision's own builder on a shallow ResNet) and Lite R-ASPP whole;
FCN likewise, and all three whole, with --exhaustive.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import segmentation
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.segmentation.deeplabv3 import _deeplabv3_resnet
from torchvision.models.segmentation.fcn import _fcn_resnet

import archspec
from reference import (
    SPECS,
    assert_matches_reference,
    assert_pairs_and_matches,
    fidelity_params,
    on_meta,
    random_reference,
)

RESNET = SPECS / "families" / "resnet.yaml"
DILATE = [False, True, True]


@pytest.mark.exhaustive  # by default the segmentation tests below cover dilation
def test_dilated_resnet_classifier_matches_torchvision(tmp_path) -> None:
    torch.manual_seed(0)
    reference = ResNet(Bottleneck, [1, 2, 1, 2], num_classes=7, replace_stride_with_dilation=[False, True, True])
    assert_matches_reference(
        RESNET,
        reference,
        tmp_path,
        depths=[1, 2, 1, 2],
        num_classes=7,
        resolution=32,
        replace_stride_with_dilation=DILATE,
    )


@pytest.mark.exhaustive
def test_dilated_mobilenet_v3_classifier_matches_torchvision(tmp_path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v3_large(weights=None, dilated=True, num_classes=7)
    assert_matches_reference(
        SPECS / "mobilenet_v3_large.yaml", reference, tmp_path, dilated=True, num_classes=7, resolution=32
    )


def test_dilation_needs_bottleneck_blocks() -> None:
    with pytest.raises(archspec.SpecErrors, match="AS209.*bottleneck"):
        archspec.summary(SPECS / "resnet18.yaml", replace_stride_with_dilation=DILATE)


HEADS = {"fcn": _fcn_resnet, "deeplabv3": _deeplabv3_resnet}


# DeepLabV3 by default (dilated backbone, ASPP with its pooling branch, upsampling, backbone.* names);
# FCN's head is a plain Sequential, checked by default by shape, order and name below.
@pytest.mark.parametrize("head", ["deeplabv3", pytest.param("fcn", marks=pytest.mark.exhaustive)])
def test_shallow_resnet_segmentation_matches_torchvision(head: str, tmp_path) -> None:
    torch.manual_seed(0)
    backbone = ResNet(Bottleneck, [1, 1, 1, 1], replace_stride_with_dilation=DILATE)
    reference = HEADS[head](backbone, num_classes=5, aux=False)
    assert_matches_reference(
        SPECS / f"{head}_resnet50.yaml", reference, tmp_path, batch=1, depths=[1, 1, 1, 1], num_classes=5, resolution=40
    )


@pytest.mark.fidelity("lraspp_mobilenet_v3_large")
def test_lraspp_matches_torchvision(tmp_path) -> None:
    torch.manual_seed(0)
    reference = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    assert_matches_reference(
        SPECS / "lraspp_mobilenet_v3_large.yaml", reference, tmp_path, batch=1, num_classes=5, resolution=32
    )


@pytest.mark.parametrize("name", fidelity_params(["fcn_resnet50", "deeplabv3_resnet50"]))
def test_whole_network_matches_torchvision_in_memory(name: str) -> None:
    """Every layer at full width and depth, random weights paired as --weights pairs them (tests/reference.py),
    at 32 px: the dilated backbone's last maps are 4x4, ASPP's pooling branch and the upsampling still run."""
    with on_meta():
        model = getattr(segmentation, name)(weights=None, weights_backbone=None, aux_loss=False)
    assert_pairs_and_matches(SPECS / f"{name}.yaml", random_reference(model), 2, resolution=32)


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large"])
def test_segmentation_matches_torchvision(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    reference = getattr(segmentation, name)(weights=None, weights_backbone=None, aux_loss=False)
    assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path, resolution=64)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large"])
def test_tensors_pair_with_torchvisions(name: str) -> None:
    """Same shapes in the same order as torchvision's state dict; every head tensor (and, for ResNet,
    every backbone tensor) has torchvision's name after the rename rules."""
    from archspec.paths import parse_rename, renamed

    compiled = archspec.compile_spec(SPECS / f"{name}.yaml")
    rules = [parse_rename(ours, ref) for ours, ref, _ in compiled.graph.naming.rename]
    with torch.device("meta"):
        ours = archspec.build(SPECS / f"{name}.yaml").state_dict()
        reference = getattr(segmentation, name)(weights=None, weights_backbone=None, aux_loss=False).state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in reference.values()]
    named = [renamed(k, rules) for k in ours]
    expected = [k for k in reference if k.startswith("classifier.") or not name.startswith("lraspp")]
    assert sorted(k for k in named if k in reference) == sorted(expected)
