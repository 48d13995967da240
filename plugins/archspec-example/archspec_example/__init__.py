"""An example archspec plugin: ShuffleNet's `channel_shuffle` op.

Zhang et al., ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices,
CVPR 2018, arXiv:1707.01083. After a grouped 1x1 convolution, the channels are regrouped so that the
next grouped convolution mixes information across groups: view [C] as [groups, C // groups],
transpose to [C // groups, groups], flatten back.

This module is what the entry point loads, so it must stay light: it declares the op (a name, a
parameter model and pure shape/weights/MACs functions) and names the torch lowering by a
"module:attribute" string. torch is imported only when the torch backend is used.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, Plugin, ShapeError

__version__ = "0.1.0"


class ChannelShuffle(OpParams):
    groups: int = Field(ge=1, description="number of channel groups; must divide the input channels")


def _shape(p: ChannelShuffle, inputs: Sequence[Shape]) -> Shape:
    shape = inputs[0]
    if len(shape) != 3:
        raise ShapeError("expects a [C, H, W] feature map (rank 3)")
    if shape[0] % p.groups:
        raise ShapeError(f"has groups={p.groups}, which must divide its {shape[0]} input channels")
    return shape


# No `weights` and no `macs`: the defaults are no trainable tensors and 0 multiply-accumulates
# (a shuffle only moves data).
CHANNEL_SHUFFLE = OpDef(
    "channel_shuffle",
    ChannelShuffle,
    (1, 1),
    _shape,
    doc="ShuffleNet's channel shuffle: [C] -> [groups, C/groups] -> transpose -> [C].",
    category="tensor",
)

PLUGIN = Plugin(ops=[CHANNEL_SHUFFLE], lowerings={"torch": "archspec_example.torch_lowering:LOWERINGS"})
