"""Layers that output a tensor of their own: a learned one (`parameter`) or a fixed one computed from spec
expressions (`constant`, a non-trainable buffer). Such a tensor has no batch axis of its own: the layer
reads its input only for the batch size and gives every sample the same tensor (a broadcast view, no copy),
so every op downstream sees an ordinary batched value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, field_validator

from archspec import init as init_data
from archspec.ir import Init, Shape, numel
from archspec.ops.base import OpDef, OpParams, ShapeError

Dims = tuple[Annotated[int, Field(ge=1)], ...]


class Parameter(OpParams):
    shape: Dims = Field(min_length=1, description="the tensor's shape (no batch axis)")
    init: str | Mapping[str, Any] = Field(
        "zeros",
        description="its initial values: a distribution as in init: rules, e.g. {trunc_normal: {std: 0.02}} "
        "or {constant: {value: 2.3}}",
    )

    @field_validator("init")
    @classmethod
    def _known_distribution(cls, value: object) -> object:
        parsed = init_data.split(dict(value) if isinstance(value, Mapping) else value)
        if isinstance(parsed, str):
            raise ValueError(parsed)
        made = init_data.make(*parsed)
        if isinstance(made, str):
            raise ValueError(made)
        return value


def parameter_init(p: Parameter) -> Init:
    parsed = init_data.split(dict(p.init) if isinstance(p.init, Mapping) else p.init)
    assert not isinstance(parsed, str)
    made = init_data.make(*parsed)
    assert not isinstance(made, str)
    return made


def _own_shape(p: Parameter | Constant, inputs: Sequence[Shape]) -> Shape:
    return p.shape


class Constant(OpParams):
    shape: Dims = Field(min_length=1, description="the tensor's shape (no batch axis)")
    values: tuple[Any, ...] = Field(
        description="its values, flat or nested in the shape's order (an expression); "
        "-inf (a string in an expression: '-inf') for a mask's blocked entries"
    )


FLOAT32_MAX = 3.4028234663852886e38
# A mask's "no attention" entry: YAML's .inf stays refused (archspec.load), so a value list writes -inf (or inf)
# as this string, plain in YAML (`values: [0.0, -inf]`) or inside an expression ('-inf').
INFINITIES = {"-inf": float("-inf"), "inf": float("inf")}


def flat_values(p: Constant) -> list[float]:
    out: list[float] = []
    stack: list[Any] = [p.values]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if not -FLOAT32_MAX <= item <= FLOAT32_MAX:  # stored as float32: beyond this it would be inf
                shown = f"{item:.3g}" if isinstance(item, float) else f"an integer of {item.bit_length()} bits"
                raise ShapeError(f"has a value ({shown}) in values beyond float32's range (+-{FLOAT32_MAX:.4g})")
            out.append(float(item))
        elif isinstance(item, str) and item in INFINITIES:
            out.append(INFINITIES[item])
        else:
            raise ShapeError(f"has a value {item!r} in values; give numbers (or -inf for a mask)")
    return out


def _constant_shape(p: Constant, inputs: Sequence[Shape]) -> Shape:
    count = len(flat_values(p))
    if count != numel(p.shape):
        raise ShapeError(f"has {count} values for shape {list(p.shape)} ({numel(p.shape)} entries)")
    return p.shape


OPS: list[OpDef[Any]] = [
    # The key "" puts the tensor at the layer's own path (`attn.relative_position_bias_table`), as
    # torchvision registers it on the module, not below it.
    OpDef(
        "parameter",
        Parameter,
        (1, 1),
        _own_shape,
        lambda p, inputs: {"": p.shape},
        doc="Outputs a learned tensor of a declared shape and initialization (a position-bias table, a logit "
        "scale); its input gives only the batch size.",
        category="tensor",
    ),
    OpDef(
        "constant",
        Constant,
        (1, 1),
        _constant_shape,
        doc="Outputs a fixed tensor computed from spec expressions (an index or coordinate table, a mask), kept "
        "as a non-trainable buffer; its input gives only the batch size.",
        category="tensor",
    ),
]
