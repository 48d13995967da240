"""Ops that language models need: token embedding, RMS and group normalisation, rotary position embedding.

An `embedding` is the only op that reads integer token ids (an input declared `{shape: [T], dtype: int64}`):
it is a table lookup and counts no MACs (docs/spec-format.md, "MACs convention"); norms and the rotation
count none either. Every shape is per sample (batch excluded): a sequence is [T] of ids, [T, D] of vectors,
and attention heads are [heads, T, head_dim].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, ShapeError


class Embedding(OpParams):
    num: int = Field(ge=1, description="rows of the table: the vocabulary size")
    dim: int = Field(ge=1, description="the width of each vector")
    padding_idx: int | None = Field(None, description="a row kept at zero that takes no gradient (nn.Embedding's)")

    @model_validator(mode="after")
    def _padding_in_table(self) -> Embedding:
        if self.padding_idx is not None and not -self.num <= self.padding_idx < self.num:
            raise ValueError(f"padding_idx {self.padding_idx} is outside a table of {self.num} rows")
        return self


def _embedding_shape(p: Embedding, inputs: Sequence[Shape]) -> Shape:
    return (*inputs[0], p.dim)


EMBEDDING = OpDef(
    "embedding",
    Embedding,
    (1, 1),
    _embedding_shape,
    lambda p, inputs: {"weight": (p.num, p.dim)},
    doc="Looks up integer token ids in a learned table [num, dim] (nn.Embedding): ids [T] -> vectors "
    "[T, dim]. Reads the int64 input; 0 MACs (a lookup).",
    category="sequence",
    integer="lookup",
)


class RMSNorm(OpParams):
    eps: float = Field(1e-6, gt=0, description="added to the mean square (Llama: rms_norm_eps)")
    affine: bool = Field(True, description="a learned scale `weight` (initialised to ones)")


def _last_axis(p: Any, inputs: Sequence[Shape]) -> Shape:
    if not inputs[0]:
        raise ShapeError("expects at least one axis")
    return inputs[0]


RMSNORM = OpDef(
    "rmsnorm",
    RMSNorm,
    (1, 1),
    _last_axis,
    lambda p, inputs: {"weight": (inputs[0][-1],)} if p.affine else {},
    doc="Root-mean-square normalisation over the last axis, as Hugging Face's LlamaRMSNorm: "
    "x * rsqrt(mean(x^2) + eps), computed in float32, times a learned weight.",
    category="norm",
)


class GroupNorm(OpParams):
    groups: int = Field(ge=1, description="groups the channels are split into; it must divide them")
    eps: float = Field(1e-5, gt=0)
    affine: bool = True


def _groupnorm_shape(p: GroupNorm, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    if not shape:
        raise ShapeError("expects [C, ...] (channels first)")
    if shape[0] % p.groups:
        raise ShapeError(f"has {p.groups} groups, which must divide the {shape[0]} channels")
    return shape


GROUPNORM = OpDef(
    "groupnorm",
    GroupNorm,
    (1, 1),
    _groupnorm_shape,
    lambda p, inputs: {"weight": (inputs[0][0],), "bias": (inputs[0][0],)} if p.affine else {},
    doc="Group normalisation over the channel axis (axis 0 of the sample) and every axis after it (nn.GroupNorm).",
    category="norm",
)


class Rope(OpParams):
    theta: float = Field(10000.0, gt=0, description="the base of the frequencies (rope_theta)")
    factor: float = Field(1.0, ge=1.0, description="Llama 3's frequency scaling factor; 1.0: no scaling")
    low_freq_factor: float = Field(
        1.0,
        gt=0,
        description="Llama 3 scaling: wavelengths beyond "
        "original_max_position_embeddings / low_freq_factor are divided by factor",
    )
    high_freq_factor: float = Field(
        4.0,
        gt=0,
        description="Llama 3 scaling: wavelengths below original_max_position_embeddings / high_freq_factor are kept",
    )
    original_max_position_embeddings: int = Field(8192, ge=1, description="Llama 3 scaling: the trained context")

    @model_validator(mode="after")
    def _band(self) -> Rope:
        if self.factor != 1.0 and self.high_freq_factor <= self.low_freq_factor:
            raise ValueError(
                f"high_freq_factor {self.high_freq_factor} must be above low_freq_factor {self.low_freq_factor}"
            )
        return self


def _rope_shape(p: Rope, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    if len(shape) < 2:
        raise ShapeError("expects [..., T, D] (positions on the second-last axis, e.g. [heads, T, head_dim])")
    if shape[-1] % 2:
        raise ShapeError(f"rotates pairs of features, so the last axis must be even; it is {shape[-1]}")
    return shape


ROPE = OpDef(
    "rope",
    Rope,
    (1, 1),
    _rope_shape,
    doc="Rotary position embedding (Hugging Face's apply_rotary_pos_emb, rotate_half layout) of q or k "
    "[..., T, D]: position t (0 .. T-1, from the running length) rotates feature pairs (i, i + D/2) by "
    "t * theta^(-2i/D); factor > 1 applies Llama 3's frequency scaling (_compute_llama3_parameters).",
    category="sequence",
)

OPS: list[OpDef[Any]] = [EMBEDDING, RMSNORM, GROUPNORM, ROPE]
