"""The torch lowering of `channel_shuffle`, imported by archspec only when the torch, torch-source, ONNX or
AOTInductor backend is used. The description it returns is instantiated by the torch backend and printed by
torch-source, which writes `from archspec_example.functional import channel_shuffle` into its file.
"""

from __future__ import annotations

from collections.abc import Sequence

from archspec.backends.torch.lowering import Call, Emit, Lowering
from archspec.ir import Node, Shape
from archspec_example.functional import channel_shuffle


def _channel_shuffle(node: Node, shapes: Sequence[Shape]) -> Emit:
    # Stateless, so a Call (a function node in the generated forward) rather than an nn.Module.
    return Call(channel_shuffle, kwargs={"groups": node.params.groups})  # type: ignore[union-attr]


LOWERINGS: dict[str, Lowering] = {"channel_shuffle": _channel_shuffle}
