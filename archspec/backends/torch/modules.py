"""The few torch modules that torch.nn lacks in the form the IR's ops need.

Parameter names match the reference implementations' leaves where one exists (nn.MultiheadAttention's
in_proj_weight / out_proj.*), so state dicts line up.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention on [N, T, D] returning only the attended values (as torchvision's ViT
    calls nn.MultiheadAttention with need_weights=False)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, bias: bool = True, causal: bool = False):
        super().__init__(width, heads, dropout=dropout, bias=bias, batch_first=True)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.causal:  # True above the diagonal: a later position, which a query may not attend to
            mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
            return super().forward(x, x, x, need_weights=False, attn_mask=mask, is_causal=True)[0]
        return super().forward(x, x, x, need_weights=False)[0]


class ClassToken(nn.Module):
    """Prepends one learned token to every sequence: [N, T, D] -> [N, T + 1, D]."""

    def __init__(self, width: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class PosEmbedding(nn.Module):
    """Adds a learned [1, T, D] embedding (initialised like torchvision's ViT: normal, std 0.02)."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(1, tokens, width).normal_(std=0.02))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


class DropPath(nn.Module):
    """Stochastic depth, row mode (torchvision.ops.StochasticDepth): in training, zero a whole
    sample's branch with probability p and rescale the kept ones by 1 / (1 - p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AxisLayerNorm(nn.LayerNorm):
    """Layer norm over one axis other than the last: moved last, normalised, moved back. On [N, C, H, W]
    with axis 1 this is torchvision's LayerNorm2d (permute, F.layer_norm, permute back), step for step."""

    def __init__(self, size: int, axis: int, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__(size, eps=eps, elementwise_affine=elementwise_affine, bias=bias)
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(self.axis, -1)).movedim(-1, self.axis)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, axis={self.axis}"


class InterpolateLike(nn.Module):
    """Interpolates its first input to the [H, W] of its second (a segmentation head resized to the network's
    input). Only the second input's shape is read, so a dynamic batch or resolution stays symbolic in export."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None):
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=other.shape[-2:], mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class Attention(nn.Module):
    """softmax(scale * q @ k^T + bias...) @ v on [N, ..., T, D], step for step as torchvision's
    shifted_window_attention writes it (q scaled first, each bias added in turn), so outputs agree exactly."""

    def __init__(self, scale: float, dropout: float = 0.0, causal: bool = False, groups: int = 1):
        super().__init__()
        self.scale = scale
        self.dropout = dropout
        self.causal = causal  # -inf on the scores of later keys
        self.groups = groups  # query heads per key/value head (grouped-query attention): k, v repeated as repeat_kv

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *biases: torch.Tensor) -> torch.Tensor:
        if self.groups > 1:
            k, v = k.repeat_interleave(self.groups, dim=-3), v.repeat_interleave(self.groups, dim=-3)
        scores = (q * self.scale).matmul(k.transpose(-2, -1))
        for bias in biases:
            scores = scores + bias
        if self.causal:
            later = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        weights = torch.nn.functional.dropout(scores.softmax(dim=-1), self.dropout, self.training)
        return weights.matmul(v)

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, dropout={self.dropout}"
            + (", causal=True" if self.causal else "")
            + (f", groups={self.groups}" if self.groups > 1 else "")
        )


def batched(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A tensor of the layer's own (no batch axis) given to every sample of x's batch, as a view."""
    return value.unsqueeze(0).expand(x.shape[0], *value.shape)


def take(index: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """x's entries at the positions `index` along `dim` (the gather op)."""
    return torch.index_select(x, dim, index)
