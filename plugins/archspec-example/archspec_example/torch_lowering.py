"""The torch lowering of `channel_shuffle`, imported by archspec only when the torch backend is used."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archspec.backends.torch.lowering import Call, Emit, Lowering
from archspec.ir import Node, Shape


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, g, C/g, H, W] -> swap the two channel axes -> [N, C, H, W]."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _channel_shuffle(node: Node, shapes: Sequence[Shape]) -> Emit:
    # Stateless, so a Call (a function node in the generated forward) rather than an nn.Module.
    return Call(channel_shuffle, kwargs={"groups": node.params.groups})  # type: ignore[union-attr]


LOWERINGS: dict[str, Lowering] = {"channel_shuffle": _channel_shuffle}
