"""Ops whose values or layout follow the running tensor's sizes, not sizes fixed when the spec is built.

A detection head's anchor grid (the centre of every cell of every feature map) and its per-anchor stride
depend on each map's H and W; an attention block that flattens H x W positions must unflatten them again.
Written with these ops, such a network runs at any input size and exports with a dynamic H and W: the
built module reads the sizes from the tensor at run time. The IR still infers every shape statically, for
the spec's own input. None of these ops has weights or MACs. Axes are per sample (batch excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from archspec.ir import Shape, numel
from archspec.ops.base import OpDef, OpParams, ShapeError, sample_axis


def _positions(inputs: Sequence[Shape]) -> int:
    """H * W summed over the inputs, each a [C, H, W] map."""
    for k, shape in enumerate(inputs):
        if len(shape) != 3:
            raise ShapeError(f"needs [C, H, W] feature maps; input {k} is {list(shape)}", input=k)
    return sum(h * w for _, h, w in inputs)


def per_input(value: float | tuple[float, ...], count: int) -> tuple[float, ...]:
    """One number for every input: a single number is repeated, a list must have one entry per input."""
    return (value,) * count if isinstance(value, float) else value


def _check_per_input(name: str, value: float | tuple[float, ...], count: int) -> None:
    if not isinstance(value, float) and len(value) != count:
        raise ShapeError(
            f"has {len(value)} value(s) in {name} for {count} input map(s); give one per input", input=None
        )


class Grid(OpParams):
    offset: float = Field(0.0, description="added to every column and row index (0.5: the centre of each cell)")
    scale: float | Annotated[tuple[float, ...], Field(min_length=1)] = Field(
        1.0, description="multiplies the coordinates after the offset: one number, or one per input map"
    )


def _grid_shape(p: Grid, inputs: Sequence[Shape]) -> Shape:
    _check_per_input("scale", p.scale, len(inputs))
    return (2, _positions(inputs))


class GridFill(OpParams):
    values: float | Annotated[tuple[float, ...], Field(min_length=1)] = Field(
        description="the number every position of an input map holds: one number, or one per input map"
    )


def _grid_fill_shape(p: GridFill, inputs: Sequence[Shape]) -> Shape:
    _check_per_input("values", p.values, len(inputs))
    return (1, _positions(inputs))


class Unflatten(OpParams):
    axis: int = Field(0, description="the per-sample axis to split")
    sizes: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] = Field(
        description="the sizes it splits into, outermost first; their product is the axis' size"
    )


def _unflatten_shape(p: Unflatten, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    axis = sample_axis(p.axis, len(shape))
    if numel(p.sizes) != shape[axis]:
        raise ShapeError(
            f"splits axis {p.axis} of size {shape[axis]} into {list(p.sizes)}, whose product is {numel(p.sizes)}"
        )
    return (*shape[:axis], *p.sizes, *shape[axis + 1 :])


class NoArguments(OpParams):
    pass


def _reshape_as_shape(p: NoArguments, inputs: Sequence[Shape]) -> Shape:
    if numel(inputs[0]) != numel(inputs[1]):
        raise ShapeError(
            f"cannot reshape {list(inputs[0])} ({numel(inputs[0])} elements) to the shape "
            f"{list(inputs[1])} of its second input ({numel(inputs[1])} elements)",
            input=None,
        )
    return inputs[1]


OPS: list[OpDef[Any]] = [
    OpDef(
        "grid",
        Grid,
        (1, None),
        _grid_shape,
        doc="The coordinates of every position of its input maps, computed from their running H and W: "
        "[2, sum of H*W], row 0 the column (x) and row 1 the row (y), each (index + offset) * scale, positions "
        "in row-major order, one map after another (ultralytics' make_anchors, transposed). A YOLO head's "
        "anchor points: {op: grid, offset: 0.5, from: [p3, p4, p5]}.",
        category="tensor",
    ),
    OpDef(
        "grid_fill",
        GridFill,
        (1, None),
        _grid_fill_shape,
        doc="One row over the positions of its input maps, as grid lays them out: [1, sum of H*W], every position "
        "of map k holding values[k] (ultralytics' stride tensor: {op: grid_fill, values: [8, 16, 32], "
        "from: [p3, p4, p5]}).",
        category="tensor",
    ),
    OpDef(
        "unflatten",
        Unflatten,
        (1, 1),
        _unflatten_shape,
        doc="Splits one axis into several (torch.unflatten); the other axes keep their running sizes, so a "
        "[4 * 16, A] tensor becomes [4, 16, A] for any A.",
        category="tensor",
        integer="pass",
    ),
    OpDef(
        "reshape_as",
        NoArguments,
        (2, 2),
        _reshape_as_shape,
        doc="Reshapes its first input to the shape of its second (Tensor.reshape_as), read at run time: "
        "[C, H * W] back to the [C, H, W] of the map it came from, at any H and W.",
        category="tensor",
    ),
]
