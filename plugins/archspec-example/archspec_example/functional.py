"""The computation of `channel_shuffle`, in plain torch.

A file written by archspec's torch-source backend imports it from here (`from archspec_example.functional
import channel_shuffle`), so the file runs the plugin's own code, as the torch backend does; it is kept apart
from torch_lowering.py so that it depends on torch alone, not on archspec's lowering table.
"""

from __future__ import annotations

import torch


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, g, C/g, H, W] -> swap the two channel axes -> [N, C, H, W]."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
