"""Normalisation ops with learned affine parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, ShapeError


class BatchNorm(OpParams):
    eps: float = Field(1e-5, gt=0)
    momentum: float | None = 0.1
    affine: bool = True


def _batchnorm_shape(p: BatchNorm, inputs: Sequence[Shape]) -> Shape:
    if not 1 <= len(inputs[0]) <= 4:
        raise ShapeError("expects [C], [C, L], [C, H, W] or [C, D, H, W]")
    return inputs[0]


def _affine(channels: int, enabled: bool, bias: bool = True) -> dict[str, Shape]:
    if not enabled:
        return {}
    return {"weight": (channels,), "bias": (channels,)} if bias else {"weight": (channels,)}


BATCHNORM = OpDef(
    "batchnorm",
    BatchNorm,
    (1, 1),
    _batchnorm_shape,
    lambda p, inputs: _affine(inputs[0][0], p.affine),
    doc="Batch normalisation over the channel axis (axis 0 of the sample).",
    category="norm",
)


class LayerNorm(OpParams):
    eps: float = Field(1e-5, gt=0)
    affine: bool = True
    bias: bool = True
    axis: int = Field(-1, description="the per-sample axis normalised over; 0 is the channels of a [C, H, W] map")


def norm_axis(p: LayerNorm, shape: Shape) -> int:
    """The normalised axis, counted from 0."""
    if not shape:
        raise ShapeError("expects at least one axis")
    if not -len(shape) <= p.axis < len(shape):
        raise ShapeError(f"uses axis {p.axis}, outside a rank-{len(shape)} sample")
    return p.axis % len(shape)


def _layernorm_shape(p: LayerNorm, inputs: Sequence[Shape]) -> Shape:
    norm_axis(p, inputs[0])
    return inputs[0]


LAYERNORM = OpDef(
    "layernorm",
    LayerNorm,
    (1, 1),
    _layernorm_shape,
    lambda p, inputs: _affine(inputs[0][norm_axis(p, inputs[0])], p.affine, p.bias),
    doc="Layer normalisation over one axis (the last by default; axis: 0 normalises the channels "
    "of a [C, H, W] map at every position, as ConvNeXt's LayerNorm2d).",
    category="norm",
)


class LayerScale(OpParams):
    init: float = Field(1e-6, description="initial value of every scale (ConvNeXt: 1e-6)")
    axis: int = Field(0, description="the per-sample axis that has one scale per entry; 0 is channels")


def _scale_axis(p: LayerScale, shape: Shape) -> int:
    if not -len(shape) <= p.axis < len(shape):
        raise ShapeError(
            f"uses axis {p.axis}, outside a rank-{len(shape)} sample" if shape else "expects at least one axis"
        )
    return p.axis % len(shape)


def _layer_scale_shape(p: LayerScale, inputs: Sequence[Shape]) -> Shape:
    _scale_axis(p, inputs[0])
    return inputs[0]


def _layer_scale_weights(p: LayerScale, inputs: Sequence[Shape]) -> dict[str, Shape]:
    # Trailing size-1 axes let the scale broadcast against the sample: (C, 1, 1) on [C, H, W], as
    # torchvision's CNBlock.layer_scale; (D,) on [T, D], as timm's LayerScale.gamma. The key "" says the
    # tensor sits at the layer's own path (`blocks.0.layer_scale`), like torchvision's, not below it.
    shape = inputs[0]
    axis = _scale_axis(p, shape)
    return {"": (shape[axis], *(1,) * (len(shape) - 1 - axis))}


LAYER_SCALE = OpDef(
    "layer_scale",
    LayerScale,
    (1, 1),
    _layer_scale_shape,
    _layer_scale_weights,
    doc="Multiplies each entry along an axis by its own learned scale, initialised to `init` "
    "(ConvNeXt and CaiT layer scale).",
    category="norm",
)

OPS: list[OpDef[Any]] = [BATCHNORM, LAYERNORM, LAYER_SCALE]
