"""Shape-preserving ops: activations, dropout, and the broadcasting merges add and mul."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from archspec.ir import Shape
from archspec.ops.base import NoParams, OpDef, OpParams, ShapeError, sample_axis


def same_shape(p: object, inputs: Sequence[Shape]) -> Shape:
    return inputs[0]


def activation(name: str, doc: str) -> OpDef[NoParams]:
    return OpDef(name, NoParams, (1, 1), same_shape, doc=doc, category="activation")


class Gelu(OpParams):
    approximate: Literal["none", "tanh"] = "none"


class Softmax(OpParams):
    axis: int = Field(-1, description="per-sample axis")


def same_shape_along_axis(p: Any, inputs: Sequence[Shape]) -> Shape:
    """The input's shape, once `p.axis` is checked to be one of its axes (softmax, normalize)."""
    sample_axis(p.axis, len(inputs[0]))
    return inputs[0]


class Dropout(OpParams):
    p: float = Field(0.5, ge=0.0, le=1.0)


class DropPath(OpParams):
    p: float = Field(ge=0.0, le=1.0, description="probability of dropping a whole sample's residual branch")


def broadcast(p: object, inputs: Sequence[Shape]) -> Shape:
    """Broadcasting of per-sample shapes of equal rank (size-1 axes stretch). Ranks must agree: in
    the batched tensors torch would align a shorter sample against the batch axis."""
    rank = max(len(s) for s in inputs)
    if any(len(s) != rank for s in inputs):
        raise ShapeError("needs inputs of the same rank (keep reduced axes, e.g. mean with keepdim: true)", input=None)
    out = []
    for axis in range(-rank, 0):
        dims = {s[axis] for s in inputs if len(s) >= -axis} - {1}
        if len(dims) > 1:
            raise ShapeError("has inputs whose shapes do not broadcast", input=None)
        out.append(dims.pop() if dims else 1)
    return tuple(out)


OPS: list[OpDef[Any]] = [
    activation("relu", "max(x, 0)."),
    activation("relu6", "min(max(x, 0), 6)."),
    activation("silu", "x * sigmoid(x) (swish)."),
    activation("sigmoid", "1 / (1 + exp(-x))."),
    activation("tanh", "Hyperbolic tangent."),
    activation("hardswish", "x * relu6(x + 3) / 6."),
    activation("hardsigmoid", "relu6(x + 3) / 6."),
    OpDef(
        "identity", NoParams, (1, 1), same_shape, doc="Passes its input through.", category="activation", integer="pass"
    ),
    OpDef("gelu", Gelu, (1, 1), same_shape, doc="Gaussian error linear unit.", category="activation"),
    OpDef(
        "softmax", Softmax, (1, 1), same_shape_along_axis, doc="Softmax along a per-sample axis.", category="activation"
    ),
    OpDef("dropout", Dropout, (1, 1), same_shape, doc="Dropout (identity in eval mode).", category="regularization"),
    OpDef(
        "drop_path",
        DropPath,
        (1, 1),
        same_shape,
        doc="Stochastic depth: drops a sample's whole residual branch in training (identity in eval).",
        category="regularization",
    ),
    OpDef("add", NoParams, (2, None), broadcast, doc="Elementwise sum of its inputs (broadcasting).", category="merge"),
    OpDef(
        "mul", NoParams, (2, None), broadcast, doc="Elementwise product of its inputs (broadcasting).", category="merge"
    ),
]
