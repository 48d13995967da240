"""Resampling of [C, H, W] feature maps: interpolation by a scale, to a size, or to another layer's size.

Interpolation has no weights and, by the project's convention, counts no multiply-accumulates (as
torch.utils.flop_counter counts none for upsampling).
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, ShapeError
from archspec.ops.spatial import IntPair, pair

PositiveScale = Annotated[float, Field(gt=0)]


class Interpolate(OpParams):
    mode: Literal["nearest", "nearest-exact", "bilinear"] = "nearest"
    align_corners: bool | None = Field(None, description="bilinear only (torch's align_corners)")
    scale: PositiveScale | tuple[PositiveScale, PositiveScale] | None = Field(
        None, description="factor for H and W (or [h, w]); the output side is floor(side * factor), as in torch"
    )
    size: IntPair | None = Field(None, description="output [H, W]")

    @model_validator(mode="after")
    def _one_target(self) -> Interpolate:
        if self.scale is not None and self.size is not None:
            raise ValueError("give scale or size, not both")
        if self.align_corners is not None and self.mode != "bilinear":
            raise ValueError(f"align_corners applies to mode bilinear only, not {self.mode!r}; remove it")
        return self


def scale_pair(p: Interpolate) -> tuple[float, float] | None:
    if p.scale is None:
        return None
    return (
        (float(p.scale), float(p.scale))
        if isinstance(p.scale, (int, float))
        else (float(p.scale[0]), float(p.scale[1]))
    )


def _interpolate_shape(p: Interpolate, inputs: Sequence[Shape]) -> Shape:
    if len(inputs[0]) != 3:
        raise ShapeError("expects a [C, H, W] feature map (rank 3)")
    c, h, w = inputs[0]
    given = (p.scale is not None) + (p.size is not None) + (len(inputs) == 2)
    if given != 1:
        raise ShapeError(
            "needs exactly one target: scale:, size:, or a second input in from: whose [H, W] it takes"
            + (f" (it has {given})" if given else ""),
            input=None,
        )
    if len(inputs) == 2:
        if len(inputs[1]) < 2:
            raise ShapeError("takes the [H, W] of its second input, which needs at least two axes", input=1)
        return (c, *inputs[1][-2:])
    if p.size is not None:
        return (c, *pair(p.size))
    sh, sw = scale_pair(p)  # type: ignore[misc]
    # torch: floor(float(side) * scale) in double precision, which Python's float is.
    oh, ow = math.floor(h * sh), math.floor(w * sw)
    if oh < 1 or ow < 1:
        raise ShapeError(f"scales a {h}x{w} map by {p.scale} to {oh}x{ow}, an empty map; use a larger scale")
    return (c, oh, ow)


_DOC = (
    "Interpolation (nearest, nearest-exact, bilinear) by scale:, to size:, or to the [H, W] of a second input "
    "(from: [x, other]); no weights, no MACs."
)
INTERPOLATE = OpDef("interpolate", Interpolate, (1, 2), _interpolate_shape, doc=_DOC, category="resample")
# nn.Upsample's name for the same computation.
UPSAMPLE = OpDef(
    "upsample",
    Interpolate,
    (1, 2),
    _interpolate_shape,
    doc="The same op as interpolate (nn.Upsample's name).",
    category="resample",
)

OPS: list[OpDef[Any]] = [INTERPOLATE, UPSAMPLE]
