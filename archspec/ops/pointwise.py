"""Elementwise arithmetic beyond activations: difference, absolute value, exponential, clamp, a constant
factor, and L2 normalisation along an axis (Swin V2's cosine attention). None counts MACs."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from archspec.ops.base import NoParams, OpDef, OpParams
from archspec.ops.elementwise import activation, broadcast, same_shape, same_shape_along_axis


class Clamp(OpParams):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> Clamp:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Scale(OpParams):
    factor: float = Field(description="multiplies every entry")


class Normalize(OpParams):
    axis: int = -1
    eps: float = Field(1e-12, gt=0, description="lower bound of the norm (F.normalize)")


OPS: list[OpDef[Any]] = [
    OpDef("sub", NoParams, (2, 2), broadcast, doc="Elementwise difference a - b (broadcasting).", category="merge"),
    activation("abs", "Absolute value."),
    activation("exp", "e^x."),
    OpDef(
        "clamp",
        Clamp,
        (1, 1),
        same_shape,
        doc="Limits every entry to [min, max] (either may be left out).",
        category="activation",
    ),
    OpDef("scale", Scale, (1, 1), same_shape, doc="Multiplies by a constant factor.", category="activation"),
    OpDef(
        "normalize",
        Normalize,
        (1, 1),
        same_shape_along_axis,
        doc="Divides by the L2 norm along an axis (F.normalize), e.g. cosine attention.",
        category="norm",
    ),
]
