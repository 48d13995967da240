"""Ops over batches of matrices [..., T, D]: batched attention and the general matrix product.

Both count their matrix products as MACs (the project's convention: attention scores and
attention-weighted values are matrix products); the softmax, the scale and the bias additions count zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from archspec.ir import Shape, numel
from archspec.ops.base import OpDef, OpParams, ShapeError
from archspec.ops.elementwise import broadcast


def _leading(shapes: Sequence[Shape], what: str) -> Shape:
    """The broadcast of the inputs' leading (batch-of-matrices) axes; ranks must agree (see `broadcast`)."""
    try:
        return broadcast(None, [s[:-2] for s in shapes])
    except ShapeError:
        raise ShapeError(
            f"needs {what} whose leading axes broadcast (equal rank, size-1 axes stretch)", input=None
        ) from None


def _matrices(shape: Shape, index: int) -> None:
    if len(shape) < 2:
        raise ShapeError("expects matrices [..., rows, columns] (rank 2 or more)", input=index)


class MatMul(OpParams):
    pass


def _matmul_shape(p: MatMul, inputs: Sequence[Shape]) -> Shape:
    a, b = inputs
    _matrices(a, 0)
    _matrices(b, 1)
    if len(a) != len(b):
        raise ShapeError("needs two inputs of the same rank (reshape one; leading size-1 axes broadcast)", input=None)
    if a[-1] != b[-2]:
        raise ShapeError(
            f"multiplies [.., {a[-2]}, {a[-1]}] by [.., {b[-2]}, {b[-1]}]: the inner sizes differ", input=None
        )
    return (*_leading(inputs, "matrices"), a[-2], b[-1])


def _matmul_macs(p: MatMul, inputs: Sequence[Shape], out: Shape) -> int:
    return numel(out) * inputs[0][-1]


MATMUL = OpDef(
    "matmul",
    MatMul,
    (2, 2),
    _matmul_shape,
    macs=_matmul_macs,
    doc="Batched matrix product a @ b of [..., n, k] and [..., k, m] (leading axes broadcast).",
    category="dense",
)


class Attention(OpParams):
    scale: float | None = Field(None, description="multiplies q before the scores; null: 1 / sqrt(D)")
    dropout: float = Field(0.0, ge=0.0, le=1.0, description="dropout on the attention weights (training only)")
    causal: bool = Field(False, description="query t attends only to keys 0..t (a decoder); needs Tq == Tk")


def kv_groups(inputs: Sequence[Shape]) -> int:
    """Query heads per key/value head: 1, or, for grouped-query attention (q [..., H, T, D], k and v
    [..., H / g, T, D]), g; each k/v head then serves g consecutive query heads (Hugging Face's repeat_kv)."""
    q, k, v = inputs[:3]
    if len(q) < 3 or len(k) != len(q) or q[-3] == k[-3] or k[-3] == 1 or q[-3] % k[-3]:
        return 1
    if v[-3] != k[-3]:
        raise ShapeError(f"needs k and v with the same number of heads (k has {k[-3]}, v has {v[-3]})", input=2)
    return q[-3] // k[-3]


def _attention_shape(p: Attention, inputs: Sequence[Shape]) -> Shape:
    q, k, v, *biases = inputs
    for index, shape in enumerate(inputs[:3]):
        _matrices(shape, index)
    if not len(q) == len(k) == len(v):
        raise ShapeError("needs q, k and v of the same rank [..., T, D]", input=None)
    if q[-1] != k[-1]:
        raise ShapeError(f"needs q and k of the same width (q has {q[-1]}, k has {k[-1]})", input=1)
    if k[-2] != v[-2]:
        raise ShapeError(f"needs k and v with the same number of tokens (k has {k[-2]}, v has {v[-2]})", input=2)
    if p.causal and q[-2] != k[-2]:
        raise ShapeError(f"is causal, which needs as many queries as keys (q has {q[-2]}, k has {k[-2]})", input=None)
    groups = kv_groups(inputs)
    heads = [q, *((*s[:-3], q[-3], *s[-2:]) for s in (k, v))] if groups > 1 else list(inputs[:3])
    leading = _leading(heads, "q, k and v")
    scores = (*leading, q[-2], k[-2])
    for index, bias in enumerate(biases, start=3):
        if len(bias) != len(scores):
            raise ShapeError(
                f"adds a bias of rank {len(bias)} to scores {list(scores)}; give it the scores' rank "
                "(size-1 axes broadcast)",
                input=index,
            )
        try:
            if broadcast(None, [scores, bias]) != scores:
                raise ShapeError("")
        except ShapeError:
            raise ShapeError(
                f"adds a bias {list(bias)} that does not broadcast to the scores {list(scores)}", input=index
            ) from None
    return (*leading, q[-2], v[-1])


def _attention_macs(p: Attention, inputs: Sequence[Shape], out: Shape) -> int:
    q, k = inputs[0], inputs[1]
    tokens = numel(out[:-1])  # every query of every matrix of the batch
    return tokens * k[-2] * q[-1] + tokens * k[-2] * out[-1]  # q @ k^T, then weights @ v


ATTENTION = OpDef(
    "attention",
    Attention,
    (3, None),
    _attention_shape,
    macs=_attention_macs,
    doc="softmax(scale * q @ k^T + bias...) @ v over [..., T, D]: inputs q, k, v, then any additive "
    "biases or masks, each broadcast to the scores [..., Tq, Tk] and added in order. causal: true "
    "masks later keys (-inf); k and v with fewer heads than q ([..., H/g, T, D]) are grouped-query "
    "attention, each k/v head serving g consecutive query heads (repeat_kv).",
    category="dense",
)

OPS: list[OpDef[Any]] = [ATTENTION, MATMUL]
