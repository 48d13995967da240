"""Ops over [C, H, W] feature maps: convolution, pooling, local response normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from archspec.ir import Shape
from archspec.ops.base import OpDef, OpParams, ShapeError

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
IntPair = Positive | tuple[Positive, Positive]  # kernel, stride, dilation, output size
PadPair = NonNegative | tuple[NonNegative, NonNegative]


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def _image(inputs: Sequence[Shape], op: str) -> tuple[int, int, int]:
    shape = inputs[0]
    if len(shape) != 3:
        raise ShapeError("expects a [C, H, W] feature map (rank 3), put flatten/reshape around it if needed")
    return shape[0], shape[1], shape[2]


def _window(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of a sliding window, with torch's rule for ceil_mode (the last window must
    start inside the input or its left padding)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _checked(out: int, axis: str, size: int) -> int:
    if out < 1:
        raise ShapeError(
            f"leaves no output along {axis} for an input of size {size}; use a smaller kernel or stride, or more padding"
        )
    return out


# -- conv2d ------------------------------------------------------------------------------
class Conv2d(OpParams):
    out: int = Field(ge=1, description="output channels")
    kernel: IntPair
    stride: IntPair = 1
    padding: PadPair | Literal["same", "valid"] = 0
    dilation: IntPair = 1
    groups: int = Field(1, ge=1)
    bias: bool = True
    in_channels: int | None = Field(None, description="optional check: the input channels this conv expects")


def conv2d_padding(p: Conv2d) -> tuple[int, int] | str:
    return p.padding if isinstance(p.padding, str) else pair(p.padding)


def _conv2d_shape(p: Conv2d, inputs: Sequence[Shape]) -> Shape:
    c, h, w = _image(inputs, "conv2d")
    if p.in_channels is not None and c != p.in_channels:
        raise ShapeError(f"expects {p.in_channels} input channels")
    if c % p.groups or p.out % p.groups:
        raise ShapeError(f"has groups={p.groups}, which must divide both its {c} input and {p.out} output channels")
    (kh, kw), (sh, sw), (dh, dw) = pair(p.kernel), pair(p.stride), pair(p.dilation)
    if p.padding == "same":
        if (sh, sw) != (1, 1):
            raise ShapeError("uses padding: same, which needs stride 1; give the padding as a number instead")
        return (p.out, h, w)
    ph, pw = (0, 0) if p.padding == "valid" else pair(p.padding)
    oh = _checked(_window(h, kh, sh, ph, dh, False), "H", h)
    ow = _checked(_window(w, kw, sw, pw, dw, False), "W", w)
    return (p.out, oh, ow)


def _conv2d_weights(p: Conv2d, inputs: Sequence[Shape]) -> dict[str, Shape]:
    kh, kw = pair(p.kernel)
    weights: dict[str, Shape] = {"weight": (p.out, inputs[0][0] // p.groups, kh, kw)}
    if p.bias:
        weights["bias"] = (p.out,)
    return weights


def _conv2d_macs(p: Conv2d, inputs: Sequence[Shape], out: Shape) -> int:
    kh, kw = pair(p.kernel)
    return out[0] * out[1] * out[2] * (inputs[0][0] // p.groups) * kh * kw


CONV2D = OpDef(
    "conv2d",
    Conv2d,
    (1, 1),
    _conv2d_shape,
    _conv2d_weights,
    _conv2d_macs,
    doc="2-D convolution (groups, dilation, optional bias) on [C, H, W].",
    category="conv",
)


# -- conv_transpose2d --------------------------------------------------------------------
class ConvTranspose2d(OpParams):
    out: int = Field(ge=1, description="output channels")
    kernel: IntPair
    stride: IntPair = 1
    padding: PadPair = 0
    output_padding: PadPair = Field(0, description="added to one side of the output; smaller than stride or dilation")
    groups: int = Field(1, ge=1)
    dilation: IntPair = 1
    bias: bool = True


def _conv_transpose2d_shape(p: ConvTranspose2d, inputs: Sequence[Shape]) -> Shape:
    c, h, w = _image(inputs, "conv_transpose2d")
    if c % p.groups or p.out % p.groups:
        raise ShapeError(f"has groups={p.groups}, which must divide both its {c} input and {p.out} output channels")
    sizes = []
    for axis, size, k, s, pad, extra, d in zip(
        "HW", (h, w), pair(p.kernel), pair(p.stride), pair(p.padding), pair(p.output_padding), pair(p.dilation)
    ):
        if extra >= s and extra >= d:
            raise ShapeError(
                f"has output_padding {extra} along {axis}, which must be smaller than its stride {s} "
                f"or its dilation {d} (torch refuses it)",
                input=None,
            )
        sizes.append(_checked((size - 1) * s - 2 * pad + d * (k - 1) + extra + 1, axis, size))
    return (p.out, *sizes)


def _conv_transpose2d_weights(p: ConvTranspose2d, inputs: Sequence[Shape]) -> dict[str, Shape]:
    # nn.ConvTranspose2d's layout: input channels first.
    weights: dict[str, Shape] = {"weight": (inputs[0][0], p.out // p.groups, *pair(p.kernel))}
    if p.bias:
        weights["bias"] = (p.out,)
    return weights


def _conv_transpose2d_macs(p: ConvTranspose2d, inputs: Sequence[Shape], out: Shape) -> int:
    # Every input position meets the whole kernel once per output channel of its group (FlopCounterMode / 2);
    # the bias is not counted, as for conv2d.
    c, h, w = inputs[0]
    kh, kw = pair(p.kernel)
    return h * w * c * (p.out // p.groups) * kh * kw


CONV_TRANSPOSE2D = OpDef(
    "conv_transpose2d",
    ConvTranspose2d,
    (1, 1),
    _conv_transpose2d_shape,
    _conv_transpose2d_weights,
    _conv_transpose2d_macs,
    doc="2-D transposed convolution (groups, dilation, output padding, "
    "optional bias) on [C, H, W], as nn.ConvTranspose2d.",
    category="conv",
)


# -- pooling -----------------------------------------------------------------------------
class MaxPool2d(OpParams):
    kernel: IntPair
    stride: IntPair | None = Field(None, description="defaults to the kernel size")
    padding: PadPair = 0
    dilation: IntPair = 1
    ceil_mode: bool = False


class AvgPool2d(OpParams):
    kernel: IntPair
    stride: IntPair | None = Field(None, description="defaults to the kernel size")
    padding: PadPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


def _pool_shape(p: MaxPool2d | AvgPool2d, inputs: Sequence[Shape]) -> Shape:
    c, h, w = _image(inputs, "pool")
    (kh, kw), (ph, pw) = pair(p.kernel), pair(p.padding)
    sh, sw = pair(p.stride if p.stride is not None else p.kernel)
    dh, dw = pair(p.dilation) if isinstance(p, MaxPool2d) else (1, 1)
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeError(f"has padding {p.padding}, more than half its kernel {p.kernel}; torch rejects that")
    oh = _checked(_window(h, kh, sh, ph, dh, p.ceil_mode), "H", h)
    ow = _checked(_window(w, kw, sw, pw, dw, p.ceil_mode), "W", w)
    return (c, oh, ow)


MAXPOOL2D = OpDef("maxpool2d", MaxPool2d, (1, 1), _pool_shape, doc="2-D max pooling.", category="pool")
AVGPOOL2D = OpDef("avgpool2d", AvgPool2d, (1, 1), _pool_shape, doc="2-D average pooling.", category="pool")


class AdaptivePool2d(OpParams):
    size: IntPair = Field(description="output H and W")


def _adaptive_shape(p: AdaptivePool2d, inputs: Sequence[Shape]) -> Shape:
    c, _, _ = _image(inputs, "adaptive pool")
    return (c, *pair(p.size))


ADAPTIVE_AVGPOOL2D = OpDef(
    "adaptive_avgpool2d",
    AdaptivePool2d,
    (1, 1),
    _adaptive_shape,
    doc="Adaptive average pooling to a fixed output size.",
    category="pool",
)
ADAPTIVE_MAXPOOL2D = OpDef(
    "adaptive_maxpool2d",
    AdaptivePool2d,
    (1, 1),
    _adaptive_shape,
    doc="Adaptive max pooling to a fixed output size.",
    category="pool",
)


# -- local response normalisation -----------------------------------------------------------
class LRN(OpParams):
    size: int = Field(ge=1)
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


def _lrn_shape(p: LRN, inputs: Sequence[Shape]) -> Shape:
    _image(inputs, "lrn")
    return inputs[0]


LRN_OP = OpDef(
    "lrn",
    LRN,
    (1, 1),
    _lrn_shape,
    doc="Local response normalisation across channels (AlexNet, VGG A-LRN).",
    category="norm",
)

OPS: list[OpDef[Any]] = [CONV2D, CONV_TRANSPOSE2D, MAXPOOL2D, AVGPOOL2D, ADAPTIVE_AVGPOOL2D, ADAPTIVE_MAXPOOL2D, LRN_OP]
