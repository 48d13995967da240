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


BATCHNORM = OpDef("batchnorm", BatchNorm, (1, 1), _batchnorm_shape,
                  lambda p, inputs: _affine(inputs[0][0], p.affine),
                  doc="Batch normalisation over the channel axis (axis 0 of the sample).", category="norm")


class LayerNorm(OpParams):
    eps: float = Field(1e-5, gt=0)
    affine: bool = True
    bias: bool = True


def _layernorm_shape(p: LayerNorm, inputs: Sequence[Shape]) -> Shape:
    if not inputs[0]:
        raise ShapeError("expects at least one axis")
    return inputs[0]


LAYERNORM = OpDef("layernorm", LayerNorm, (1, 1), _layernorm_shape,
                  lambda p, inputs: _affine(inputs[0][-1], p.affine, p.bias),
                  doc="Layer normalisation over the last axis.", category="norm")

OPS: list[OpDef[Any]] = [BATCHNORM, LAYERNORM]
