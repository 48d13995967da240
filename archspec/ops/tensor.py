"""Ops that move or reduce axes without arithmetic weights. Axes are per sample (batch excluded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from archspec.ir import Shape, numel
from archspec.ops.base import OpDef, OpParams, ShapeError, sample_axis


class Flatten(OpParams):
    start: int = 0
    end: int = -1


def _flatten_shape(p: Flatten, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    start, end = sample_axis(p.start, len(shape)), sample_axis(p.end, len(shape))
    if start > end:
        raise ShapeError(f"has start axis {p.start} after end axis {p.end}")
    return (*shape[:start], numel(shape[start : end + 1]), *shape[end + 1 :])


class Reshape(OpParams):
    shape: tuple[int, ...] = Field(description="per-sample shape; one entry may be -1")


def _reshape_shape(p: Reshape, inputs: Sequence[Shape]) -> Shape:
    total = numel(inputs[0])
    if p.shape.count(-1) > 1 or any(d < 1 and d != -1 for d in p.shape):
        raise ShapeError(f"has target shape {list(p.shape)}: entries must be positive, with at most one -1")
    known = numel(d for d in p.shape if d != -1)
    if (-1 in p.shape and total % known) or (-1 not in p.shape and known != total):
        raise ShapeError(f"cannot reshape {total} elements to {list(p.shape)}")
    return tuple(total // known if d == -1 else d for d in p.shape)


class Permute(OpParams):
    dims: tuple[int, ...]


def _permute_shape(p: Permute, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    dims = [sample_axis(d, len(shape)) for d in p.dims]
    if sorted(dims) != list(range(len(shape))):
        raise ShapeError(f"has dims {list(p.dims)}, not a permutation of the {len(shape)} sample axes")
    return tuple(shape[d] for d in dims)


class Transpose(OpParams):
    axes: tuple[int, int] = (0, 1)


def _transpose_shape(p: Transpose, inputs: Sequence[Shape]) -> Shape:
    shape = list(inputs[0])
    a, b = (sample_axis(x, len(shape)) for x in p.axes)
    shape[a], shape[b] = shape[b], shape[a]
    return tuple(shape)


class Concat(OpParams):
    axis: int = Field(0, description="per-sample axis; 0 is channels for images")


def _concat_shape(p: Concat, inputs: Sequence[Shape]) -> Shape:
    rank = len(inputs[0])
    axis = sample_axis(p.axis, rank)
    for shape in inputs:
        if len(shape) != rank or any(a != b for k, (a, b) in enumerate(zip(shape, inputs[0])) if k != axis):
            raise ShapeError(f"needs inputs that agree on every axis but {p.axis}", input=None)
    return (*inputs[0][:axis], sum(s[axis] for s in inputs), *inputs[0][axis + 1 :])


class Mean(OpParams):
    # At least one axis: torch reads `mean(dim=())` as "every axis", the batch included.
    axes: int | Annotated[tuple[int, ...], Field(min_length=1)]
    keepdim: bool = False


def _mean_shape(p: Mean, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    listed = [sample_axis(a, len(shape)) for a in ((p.axes,) if isinstance(p.axes, int) else p.axes)]
    axes = set(listed)
    if len(axes) != len(listed):
        raise ShapeError(f"names an axis twice in axes {p.axes}")
    if p.keepdim:
        return tuple(1 if k in axes else d for k, d in enumerate(shape))
    return tuple(d for k, d in enumerate(shape) if k not in axes)


class Select(OpParams):
    axis: int = 0
    position: int = Field(0, description="index along the axis; the axis is removed")


def _select_shape(p: Select, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    axis = sample_axis(p.axis, len(shape))
    if not -shape[axis] <= p.position < shape[axis]:
        raise ShapeError(f"selects position {p.position} of axis {p.axis}, which has size {shape[axis]}")
    return (*shape[:axis], *shape[axis + 1 :])


class Pad(OpParams):
    widths: tuple[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]], ...] = Field(
        description="[before, after] for every sample axis, in axis order (numpy.pad's pad_width)"
    )
    value: float = Field(0.0, description="the constant written into the padding")


def _pad_shape(p: Pad, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    if len(p.widths) != len(shape):
        raise ShapeError(
            f"has {len(p.widths)} [before, after] pair(s) in widths; give one for each of the {len(shape)} sample axes"
        )
    return tuple(d + before + after for d, (before, after) in zip(shape, p.widths))


OPS: list[OpDef[Any]] = [
    OpDef(
        "flatten",
        Flatten,
        (1, 1),
        _flatten_shape,
        doc="Merges the sample axes start..end (all by default).",
        category="tensor",
        integer="pass",
    ),
    OpDef("reshape", Reshape, (1, 1), _reshape_shape, doc="Reshapes the sample.", category="tensor", integer="pass"),
    OpDef(
        "permute", Permute, (1, 1), _permute_shape, doc="Reorders the sample axes.", category="tensor", integer="pass"
    ),
    OpDef(
        "transpose",
        Transpose,
        (1, 1),
        _transpose_shape,
        doc="Swaps two sample axes.",
        category="tensor",
        integer="pass",
    ),
    OpDef(
        "concat",
        Concat,
        (1, None),
        _concat_shape,
        doc="Concatenates its inputs along an axis.",
        category="merge",
        integer="pass",
    ),
    OpDef("mean", Mean, (1, 1), _mean_shape, doc="Mean over sample axes.", category="tensor"),
    OpDef(
        "select",
        Select,
        (1, 1),
        _select_shape,
        doc="Takes one position along an axis (e.g. the class token).",
        category="tensor",
        integer="pass",
    ),
    OpDef(
        "pad",
        Pad,
        (1, 1),
        _pad_shape,
        doc="Pads every sample axis with a constant (e.g. zero channels for a ResNet option-A shortcut).",
        category="tensor",
    ),
]
