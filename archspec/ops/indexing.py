"""Ops that move or pick entries along sample axes: cyclic shift, strided slice, gather by a fixed index.
None has weights or MACs. Axes are per sample (batch excluded), as everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, ShapeError, sample_axis


class Roll(OpParams):
    shifts: int | tuple[int, ...] = Field(description="positions to shift by, one per axis (torch.roll)")
    axes: int | tuple[int, ...]


def roll_pairs(p: Roll) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shifts = (p.shifts,) if isinstance(p.shifts, int) else p.shifts
    axes = (p.axes,) if isinstance(p.axes, int) else p.axes
    return shifts, axes


def _roll_shape(p: Roll, inputs: Sequence[Shape]) -> Shape:
    shifts, axes = roll_pairs(p)
    if len(shifts) != len(axes) or not axes:
        raise ShapeError(f"has {len(shifts)} shift(s) for {len(axes)} axes; give one shift per axis")
    listed = [sample_axis(a, len(inputs[0])) for a in axes]
    if len(set(listed)) != len(listed):
        raise ShapeError(f"names an axis twice in axes {list(axes)}")
    for shift, axis in zip(shifts, listed):
        if abs(shift) >= 2**63:  # torch.roll takes 64-bit shifts; the same roll is shift % size
            raise ShapeError(
                f"has shift {shift} on axis {axis}, beyond a 64-bit integer; "
                f"use {shift % inputs[0][axis]} (the same roll of an axis of size {inputs[0][axis]})"
            )
    return inputs[0]


class Slice(OpParams):
    axis: int = 0
    start: int | None = Field(None, description="first position (negative counts from the end); null: 0")
    stop: int | None = Field(None, description="position after the last (negative counts from the end); null: the end")
    step: Annotated[int, Field(ge=1)] = 1


def slice_bounds(p: Slice, shape: Shape) -> tuple[int, int, int, int]:
    """(axis, start, stop, step) with Python's slice rules applied to the axis' size: non-negative, clipped."""
    axis = sample_axis(p.axis, len(shape))
    start, stop, step = slice(p.start, p.stop, p.step).indices(shape[axis])
    return axis, start, max(stop, start), step


def _slice_shape(p: Slice, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    axis, start, stop, step = slice_bounds(p, shape)
    size = len(range(start, stop, step))
    if size == 0:
        raise ShapeError(
            f"takes [{p.start}:{p.stop}:{p.step}] of axis {p.axis}, which has size {shape[axis]}: nothing is left"
        )
    return (*shape[:axis], size, *shape[axis + 1 :])


class Gather(OpParams):
    axis: int = 0
    index: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        min_length=1, description="positions to take along the axis, in order (repeats allowed); kept as a buffer"
    )


def _gather_shape(p: Gather, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    axis = sample_axis(p.axis, len(shape))
    largest = max(p.index)
    if largest >= shape[axis]:
        raise ShapeError(f"takes position {largest} of axis {p.axis}, which has size {shape[axis]}")
    return (*shape[:axis], len(p.index), *shape[axis + 1 :])


OPS: list[OpDef[Any]] = [
    OpDef(
        "roll",
        Roll,
        (1, 1),
        _roll_shape,
        doc="Cyclic shift along axes (torch.roll), e.g. Swin's shifted windows.",
        category="tensor",
        integer="pass",
    ),
    OpDef(
        "slice",
        Slice,
        (1, 1),
        _slice_shape,
        doc="x[start:stop:step] along one axis.",
        category="tensor",
        integer="pass",
    ),
    OpDef(
        "gather",
        Gather,
        (1, 1),
        _gather_shape,
        doc="Takes the listed positions along an axis (index_select by a constant index, which the built module "
        "keeps as a buffer at the layer's own path), e.g. Swin's relative_position_index.",
        category="tensor",
        integer="pass",
    ),
]
