"""The torch functions of `archspec.ops.runtime`'s position ops: the sizes come from the running tensors.

Each is written step for step as ultralytics' `make_anchors` computes the same values, so the numbers are
identical to the reference's (exact small integers plus an offset, in the maps' dtype). The torch-source
backend copies these functions into its file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _batched(rows: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    out = torch.cat(rows, 1)
    return out.unsqueeze(0).expand(like.shape[0], *out.shape)


def grid(*maps: torch.Tensor, offset: float, scale: Sequence[float]) -> torch.Tensor:
    """[N, 2, sum of H*W]: (column + offset) * scale and (row + offset) * scale of every position of every map."""
    rows = []
    for x, factor in zip(maps, scale):
        h, w = x.shape[-2:]
        sx = torch.arange(w, device=x.device).to(x.dtype) + offset
        sy = torch.arange(h, device=x.device).to(x.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        xy = torch.stack((sx, sy)).flatten(1)
        rows.append(xy if factor == 1.0 else xy * factor)
    return _batched(rows, maps[0])


def grid_fill(*maps: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
    """[N, 1, sum of H*W]: every position of map k holds values[k]."""
    return _batched([x.new_full((1, x.shape[-2] * x.shape[-1]), v) for x, v in zip(maps, values)], maps[0])
