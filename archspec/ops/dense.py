"""Ops over the last axis and over token sequences [T, D]: linear, attention, tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from archspec.ir import Shape, numel
from archspec.ops.base import OpDef, OpParams, ShapeError


class Linear(OpParams):
    out: int = Field(ge=1, description="output features")
    bias: bool = True
    in_features: int | None = Field(None, description="optional check: the input features this layer expects")
    tie: str | None = Field(
        None,
        description="use another layer's weight [out, in] instead of an own one (a language "
        "model's head tied to the token embedding): that layer's full path, "
        "e.g. transformer.wte, or its tensor, transformer.wte.weight",
    )


def _linear_shape(p: Linear, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    if not shape:
        raise ShapeError("expects at least one axis")
    if p.in_features is not None and shape[-1] != p.in_features:
        raise ShapeError(f"expects {p.in_features} input features on its last axis")
    return (*shape[:-1], p.out)


def _linear_weights(p: Linear, inputs: Sequence[Shape]) -> dict[str, Shape]:
    weights: dict[str, Shape] = {} if p.tie else {"weight": (p.out, inputs[0][-1])}
    if p.bias:
        weights["bias"] = (p.out,)
    return weights


def _linear_macs(p: Linear, inputs: Sequence[Shape], out: Shape) -> int:
    return numel(out) * inputs[0][-1]


def _linear_ties(p: Linear, inputs: Sequence[Shape]) -> dict[str, tuple[str, Shape]]:
    return {"weight": (p.tie, (p.out, inputs[0][-1]))} if p.tie else {}


LINEAR = OpDef(
    "linear",
    Linear,
    (1, 1),
    _linear_shape,
    _linear_weights,
    _linear_macs,
    doc="Affine map over the last axis (applied to every leading position). With tie:, its weight is "
    "another layer's tensor (counted and stored once, under that layer's name).",
    category="dense",
    ties=_linear_ties,
)


def _tokens(inputs: Sequence[Shape]) -> tuple[int, int]:
    if len(inputs[0]) != 2:
        raise ShapeError("expects a token sequence [T, D] (rank 2)")
    return inputs[0][0], inputs[0][1]


class SelfAttention(OpParams):
    heads: int = Field(ge=1)
    dropout: float = Field(0.0, ge=0.0, le=1.0, description="dropout on the attention weights")
    bias: bool = True
    causal: bool = Field(False, description="each position attends only to itself and earlier ones (a decoder)")


def _attention_shape(p: SelfAttention, inputs: Sequence[Shape]) -> Shape:
    _, d = _tokens(inputs)
    if d % p.heads:
        raise ShapeError(f"has {p.heads} heads, which must divide the width")
    return inputs[0]


def _attention_weights(p: SelfAttention, inputs: Sequence[Shape]) -> dict[str, Shape]:
    _, d = _tokens(inputs)
    weights: dict[str, Shape] = {"in_proj_weight": (3 * d, d)}
    if p.bias:
        weights["in_proj_bias"] = (3 * d,)
    weights["out_proj.weight"] = (d, d)
    if p.bias:
        weights["out_proj.bias"] = (d,)
    return weights


def _attention_macs(p: SelfAttention, inputs: Sequence[Shape], out: Shape) -> int:
    t, d = _tokens(inputs)
    # q, k, v projections + scores (QK^T) + weighted values + output projection.
    return t * d * 3 * d + t * t * d + t * t * d + t * d * d


SELF_ATTENTION = OpDef(
    "self_attention",
    SelfAttention,
    (1, 1),
    _attention_shape,
    _attention_weights,
    _attention_macs,
    doc="Multi-head self-attention over [T, D] (torch.nn.MultiheadAttention layout).",
    category="dense",
)


class Token(OpParams):
    pass


def _class_token_shape(p: Token, inputs: Sequence[Shape]) -> Shape:
    t, d = _tokens(inputs)
    return (t + 1, d)


CLASS_TOKEN = OpDef(
    "class_token",
    Token,
    (1, 1),
    _class_token_shape,
    lambda p, inputs: {"token": (1, 1, _tokens(inputs)[1])},
    doc="Prepends a learned token to a [T, D] sequence.",
    category="dense",
)


def _same_tokens(p: Token, inputs: Sequence[Shape]) -> Shape:
    _tokens(inputs)
    return inputs[0]


POS_EMBEDDING = OpDef(
    "pos_embedding",
    Token,
    (1, 1),
    _same_tokens,
    lambda p, inputs: {"embedding": (1, *_tokens(inputs))},
    doc="Adds a learned position embedding to a [T, D] sequence.",
    category="dense",
)

OPS: list[OpDef[Any]] = [LINEAR, SELF_ATTENTION, CLASS_TOKEN, POS_EMBEDDING]
