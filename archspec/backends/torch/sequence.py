"""The torch modules of `archspec.ops.sequence` that torch.nn lacks in Hugging Face's form, and the input
check every generated forward starts with.

RMSNorm and the rotary embedding are written step for step as transformers' LlamaRMSNorm,
`_compute_default_rope_parameters`, `_compute_llama3_parameters`, LlamaRotaryEmbedding and
`apply_rotary_pos_emb`, so outputs agree with the reference bit for bit. The torch-source backend copies
these classes into its file.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def check_input(x: torch.Tensor, integer: bool, network: str) -> torch.Tensor:
    """`x`, once its element type fits the spec's input: integer token ids for an int64 input, floating point
    otherwise. A mismatch is a TypeError saying so, not an error from deep inside the first layer."""
    integer_dtypes = (torch.int64, torch.int32)
    if integer and x.dtype not in integer_dtypes:
        raise TypeError(
            f"the network {network!r} takes integer token ids (int64) of shape [batch, ...]; got a tensor of dtype {x.dtype}"
            + (": pass the ids themselves, e.g. x.long()" if x.is_floating_point() else "")
        )
    if not integer and not x.is_floating_point():
        raise TypeError(
            f"the network {network!r} takes floating-point input; got a tensor of dtype {x.dtype}"
            + (
                " (its spec declares a float input; convert with x.float(), or declare input: "
                "{shape: [...], dtype: int64} for token ids)"
                if x.dtype in integer_dtypes
                else ""
            )
        )
    return x


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) over the last axis, in float32, times `weight` (transformers' LlamaRMSNorm)."""

    def __init__(self, width: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width)) if affine else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return x.to(dtype) if self.weight is None else self.weight * x.to(dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, affine={self.weight is not None}"


def rope_frequencies(
    dim: int,
    theta: float,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: int,
) -> torch.Tensor:
    """The inverse frequencies of a rotary embedding of width `dim`: transformers' default parameters, then,
    for a factor other than 1, Llama 3's scaling (_compute_llama3_parameters), in float32 as there."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
    if factor == 1.0:
        return inv_freq
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (original_max_position_embeddings / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


class Rotary(nn.Module):
    """Rotary position embedding of [N, ..., T, D] (positions 0 .. T-1 on the second-last axis, read from the
    running tensor, so any length works): x * cos + rotate_half(x) * sin, as transformers' LlamaRotaryEmbedding
    and apply_rotary_pos_emb. The frequencies are a non-persistent buffer, as there: not in the state dict."""

    inv_freq: torch.Tensor

    def __init__(
        self,
        dim: int,
        theta: float = 10000.0,
        factor: float = 1.0,
        low_freq_factor: float = 1.0,
        high_freq_factor: float = 4.0,
        original_max_position_embeddings: int = 8192,
    ):
        super().__init__()
        self.register_buffer(
            "inv_freq",
            rope_frequencies(dim, theta, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.int64)
        freqs = positions[:, None].float() * self.inv_freq.float()  # [T, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x * cos) + (rotated * sin)
