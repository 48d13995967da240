"""The reference implementation of a zoo spec: the same architecture from torchvision or timm.

Each table maps a spec name to its library's constructor. Our spec loads the reference model's state
dict (the `--weights` path), so both sides compute with the same weights. torchvision and timm are
imported only when a reference is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from archspec.errors import ArchspecError, did_you_mean, one_of

_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2")
_DENSENETS = ("densenet121", "densenet161", "densenet169", "densenet201")
_EFFICIENTNETS = tuple(f"efficientnet_b{i}" for i in range(8))
_VGGS = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg16_bn")
_VITS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")
_REGNETS = ("regnet_y_400mf",)
_MIXERS = ("mixer_s32", "mixer_s16", "mixer_b32", "mixer_b16", "mixer_l32", "mixer_l16")
_MOBILE = ("mobilenet_v2", "mobilenet_v3_large", "mnasnet1_0")
_CONVNEXTS = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")
_SWINS = ("swin_t", "swin_s", "swin_v2_t")
_EFFICIENTNETS_V2 = ("efficientnet_v2_s", "efficientnet_v2_m")
# torchvision.models.segmentation, as the reference figures were measured: no auxiliary head, no weights.
# Their forward returns {"out": map}; the bench runner reads the map.
_SEGMENTATION = ("fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large")
_CLASSIC = (
    "alexnet",
    "googlenet",
    "inception_v3",
    "squeezenet1_0",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
)
# Constructor arguments that make a torchvision model the architecture its spec describes (and its
# reference figures were measured on): GoogLeNet and Inception v3 without auxiliary classifiers, whose
# tensors the spec does not have, and without the input transform. No init: the weights are replaced.
_TORCHVISION_ARGUMENTS: Mapping[str, Mapping[str, Any]] = {
    "googlenet": {"aux_logits": False, "transform_input": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "transform_input": False, "init_weights": False},
}

# spec name -> constructor name. timm only where its module order and tensor roles line up with ours
# (its VGG head is convolutional and its ViT has a separate qkv layout: use torchvision for those).
REFERENCES: Mapping[str, Mapping[str, str]] = {
    "torchvision": {
        name: name
        for name in _RESNETS
        + _DENSENETS
        + _EFFICIENTNETS
        + _VGGS
        + _VITS
        + _MOBILE
        + _CONVNEXTS
        + _CLASSIC
        + _REGNETS
        + _SWINS
        + _EFFICIENTNETS_V2
        + _SEGMENTATION
    },
    "timm": {
        **{name: name for name in _RESNETS + _DENSENETS + ("efficientnet_b0",)},
        **{name: f"{name}_224" for name in _MIXERS},
        # the reference figures of these two are timm's (SE-ResNet-50: the paper's Caffe layout)
        "mobilenet_v1": "mobilenetv1_100",
        "seresnet50": "legacy_seresnet50",
        "xception": "legacy_xception",
    },  # timm 1.0's name for the original (Keras-port) Xception
}


def reference_name(library: str, spec: str) -> str:
    """`library.constructor` for spec `spec`, or an AS902 error saying what exists."""
    if library not in REFERENCES:
        raise ArchspecError("AS902", f"unknown reference library {library!r}; use one of {one_of(list(REFERENCES))}")
    table = REFERENCES[library]
    if spec not in table:
        raise ArchspecError(
            "AS902",
            f"{library} has no reference model for spec {spec!r}.{did_you_mean(spec, table)} "
            f"Specs with a {library} reference: {one_of(list(table), limit=50)}",
        )
    return f"{library}.{table[spec]}" if library == "timm" else f"torchvision.models.{table[spec]}"


def build_reference(library: str, spec: str, overrides: Mapping[str, Any]) -> nn.Module:
    """The reference model for `spec`, with `overrides` (num_classes, resolution) passed on where the
    constructor has a matching argument; any other override is an error (the reference cannot follow)."""
    reference_name(library, spec)
    constructor = REFERENCES[library][spec]
    kwargs: dict[str, Any] = dict(_TORCHVISION_ARGUMENTS.get(constructor, {})) if library == "torchvision" else {}
    for key, value in overrides.items():
        if key == "num_classes":
            kwargs["num_classes"] = value
        elif key == "resolution":
            if spec in _VITS:
                kwargs["image_size"] = value
            elif spec in _MIXERS:
                kwargs["img_size"] = value
            # convolutional references pool adaptively: any resolution runs as is
        else:
            raise ArchspecError(
                "AS902",
                f"--set {key}=... has no counterpart in the {library} reference of {spec!r}; "
                "compare without --vs, or only override num_classes and resolution",
            )
    try:
        if library == "timm":
            import timm

            return timm.create_model(constructor, pretrained=False, **kwargs)
        import torchvision

        if spec in _SEGMENTATION:
            return getattr(torchvision.models.segmentation, constructor)(
                weights=None, weights_backbone=None, aux_loss=False, **kwargs
            )
        return getattr(torchvision.models, constructor)(weights=None, **kwargs)
    except ImportError as exc:
        raise ArchspecError(
            "AS902", f"--vs {library} needs the {exc.name or library} package (pip install {library})"
        ) from None
