"""The lowering table, one entry per op, shared by the torch and torch-source backends.

An entry takes the node and its input shapes (per sample) and returns a *description* of what computes it,
as data: the torch backend instantiates the description (codegen.py), the torch-source backend prints the
same description as Python (torch_source/render.py). So an op is lowered once, and a plugin that gives a
torch lowering gets both backends. The closed set of descriptions:

  * a `Module`: a class (an `nn` module, or a helper of modules.py, sequence.py, runtime.py) and its
    constructor arguments; the module is called with the node's inputs (ops with weights or train/eval
    behaviour). A plugin may still return an nn.Module instance: the torch backend takes it, torch-source
    cannot print it and says so;
  * a `Call`: a function applied to the inputs, for stateless ops;
  * an `Owned` tensor: a function of one learned tensor the layer registers at its own path (layer scale, as
    torchvision registers it) and of the inputs, no submodule;
  * a `Buffer`: like `Owned`, with a fixed, non-trainable tensor registered as a buffer (an index table,
    a constant computed by the spec);
  * a `Tied` call: a function of the inputs and the layer's tensors, some of them another layer's (a tied head);
  * `ALIAS`: the node is its input (identity).
Arguments are plain Python values (numbers, booleans, None, strings an op's typed parameters allow, tuples of
these), so torch-source can write each as a literal. Per-sample axes from the IR become torch axes by skipping
the batch axis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
import operator
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from archspec.backends.torch import modules, runtime as runtime_functions, sequence as sequence_modules
from archspec.errors import ArchspecError
from archspec.ir import Init, Node, Shape
from archspec.ops import (
    attention,
    constants,
    dense,
    elementwise,
    indexing,
    norm,
    pointwise,
    resample,
    runtime,
    sequence,
    spatial,
    tensor,
)


@dataclass(frozen=True)
class Module:
    """`cls(*args, **kwargs)`, a module called with the node's inputs."""

    cls: Callable[..., nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def make(self) -> nn.Module:
        return self.cls(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Call:
    """`target(*inputs, *args, **kwargs)`; with `fold`, `target` combines the inputs pairwise;
    with `listed`, the inputs are passed as one list (torch.cat); with `inplace_ok`, `target` takes
    `inplace=True`, which codegen passes where overwriting the input is safe. `accumulate` is the
    in-place form of a fold's `target` (operator.iadd), which codegen uses where the running value may
    be overwritten; give it only for ops whose backward reads none of their inputs (add, not mul)."""

    target: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    fold: bool = False
    listed: bool = False
    inplace_ok: bool = False
    accumulate: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Owned:
    """`target(parameter, *inputs)` with one learned tensor of `shape` that the layer owns itself, with no
    submodule: it is registered at the layer's own path (`stages.0.blocks.0.layer_scale`), as torchvision
    registers CNBlock.layer_scale on the block, so the block's state dict lists it before its submodules'
    tensors, in the reference's order and under the reference's leaf name. It starts as zeros filled by
    `init` (a distribution of archspec.init; "default": zeros)."""

    shape: tuple[int, ...]
    target: Callable[..., Any]
    init: Init = Init("default")

    def make(self) -> torch.Tensor:
        from archspec.backends.torch.init import FILL

        value = torch.zeros(self.shape)
        if self.init.kind != "default":
            FILL[self.init.kind](value, **dict(self.init.args))
        return value


@dataclass(frozen=True)
class Buffer:
    """`target(buffer, *inputs, **kwargs)` with one fixed tensor the layer owns (`values`, flat, of `shape`
    and dtype `dtype`: "float32" or "int64"), registered as a buffer at the layer's own path (torchvision's
    `attn.relative_position_index`), so it is in the state dict under the reference's name and `--weights`
    can compare it."""

    values: tuple[float, ...] | tuple[int, ...]
    shape: tuple[int, ...]
    dtype: str
    target: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> torch.Tensor:
        return torch.tensor(self.values, dtype=getattr(torch, self.dtype)).reshape(self.shape)


@dataclass(frozen=True)
class Tied:
    """`target(*inputs, *tensors)` with the layer's tensors passed in: those the node ties (`Node.ties`) are read
    where their owner registered them, so a tied tensor is one parameter under its owner's name (a language
    model's head tied to its token embedding); the rest are the layer's own: `own` makes a module holding them
    at the layer's path (initialised and frozen like any layer's module), whose tied tensors are deleted."""

    target: Callable[..., Any]
    tensors: tuple[str, ...]
    own: Module


class _Alias:
    pass


ALIAS = _Alias()
Emit = Module | nn.Module | Call | Owned | Buffer | Tied | _Alias
Lowering = Callable[[Node, Sequence[Shape]], Emit]


def lower_node(table: Mapping[str, Lowering], node: Node, shapes: Sequence[Shape]) -> Emit:
    """`node`'s description from `table`; an exception from a lowering function other than an ArchspecError is
    that function's own bug (AS805), named by op so that `archspec list` shows whose package it is. Both the
    torch backend and torch-source lower through here."""
    try:
        return table[node.op](node, shapes)
    except ArchspecError:
        raise
    except Exception as exc:
        raise ArchspecError(
            "AS805",
            f"the torch lowering of op {node.op!r} (layer {node.name!r}) raised "
            f"{type(exc).__name__}: {exc}; this is a bug in the package providing {node.op!r} "
            "(see `archspec list`)",
        ) from None


def torch_axis(axis: int, rank: int) -> int:
    """A per-sample axis -> the same axis of the batched tensor."""
    return axis % rank + 1


def _size(v: Any) -> Any:
    """A pair of equal sizes as one int (the module stores both as a pair), so torch-source writes `padding=1`."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and isinstance(v[0], int):
        return v[0]
    return v


def _conv2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.Conv2d = node.params  # type: ignore[assignment]
    return Module(
        nn.Conv2d,
        (shapes[0][0], p.out),
        dict(
            kernel_size=_size(p.kernel),
            stride=_size(p.stride),
            padding=_size(spatial.conv2d_padding(p)),
            dilation=_size(p.dilation),
            groups=p.groups,
            bias=p.bias,
        ),
    )


def _conv_transpose2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.ConvTranspose2d = node.params  # type: ignore[assignment]
    return Module(
        nn.ConvTranspose2d,
        (shapes[0][0], p.out),
        dict(
            kernel_size=_size(p.kernel),
            stride=_size(p.stride),
            padding=_size(p.padding),
            output_padding=_size(p.output_padding),
            groups=p.groups,
            bias=p.bias,
            dilation=_size(p.dilation),
        ),
    )


def _maxpool2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.MaxPool2d = node.params  # type: ignore[assignment]
    return Call(
        F.max_pool2d,
        kwargs=dict(
            kernel_size=p.kernel,
            stride=p.stride if p.stride is not None else p.kernel,
            padding=p.padding,
            dilation=p.dilation,
            ceil_mode=p.ceil_mode,
        ),
    )


def _avgpool2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.AvgPool2d = node.params  # type: ignore[assignment]
    return Call(
        F.avg_pool2d,
        kwargs=dict(
            kernel_size=p.kernel,
            stride=p.stride if p.stride is not None else p.kernel,
            padding=p.padding,
            ceil_mode=p.ceil_mode,
            count_include_pad=p.count_include_pad,
        ),
    )


def _adaptive(function: Callable[..., Any]) -> Lowering:
    def lower(node: Node, shapes: Sequence[Shape]) -> Emit:
        p: spatial.AdaptivePool2d = node.params  # type: ignore[assignment]
        return Call(function, args=(spatial.pair(p.size),))

    return lower


def _lrn(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.LRN = node.params  # type: ignore[assignment]
    return Module(nn.LocalResponseNorm, (p.size,), dict(alpha=p.alpha, beta=p.beta, k=p.k))


def _linear(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: dense.Linear = node.params  # type: ignore[assignment]
    linear = Module(nn.Linear, (shapes[0][-1], p.out), dict(bias=p.bias))
    if not node.ties:
        return linear
    return Tied(F.linear, ("weight", "bias") if p.bias else ("weight",), linear)


def _attention(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: dense.SelfAttention = node.params  # type: ignore[assignment]
    return Module(modules.SelfAttention, (shapes[0][1], p.heads), dict(dropout=p.dropout, bias=p.bias, causal=p.causal))


def _batchnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.BatchNorm = node.params  # type: ignore[assignment]
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(shapes[0])]
    return Module(cls, (shapes[0][0],), dict(eps=p.eps, momentum=p.momentum, affine=p.affine))


def _layernorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.LayerNorm = node.params  # type: ignore[assignment]
    rank, axis = len(shapes[0]), norm.norm_axis(p, shapes[0])
    if axis == rank - 1:
        return Module(nn.LayerNorm, (shapes[0][-1],), dict(eps=p.eps, elementwise_affine=p.affine, bias=p.bias))
    return Module(
        modules.AxisLayerNorm,
        (shapes[0][axis], torch_axis(axis, rank)),
        dict(eps=p.eps, elementwise_affine=p.affine, bias=p.bias),
    )


def _layer_scale(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.LayerScale = node.params  # type: ignore[assignment]
    return Owned(tuple(norm.LAYER_SCALE.weights(p, shapes)[""]), operator.mul, Init("constant", (("value", p.init),)))


def pad_widths(p: tensor.Pad) -> tuple[int, ...]:
    """numpy-style [before, after] per sample axis -> F.pad's flat tuple, last axis first."""
    return tuple(w for before, after in reversed(p.widths) for w in (before, after))


def _pad(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Pad = node.params  # type: ignore[assignment]
    return Call(F.pad, args=(pad_widths(p),), kwargs={"value": p.value})


def _function(target: Callable[..., Any], inplace_ok: bool = False) -> Lowering:
    return lambda node, shapes: Call(target, inplace_ok=inplace_ok)


def _gelu(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: elementwise.Gelu = node.params  # type: ignore[assignment]
    return Call(F.gelu, kwargs={"approximate": p.approximate})


def _softmax(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: elementwise.Softmax = node.params  # type: ignore[assignment]
    return Call(torch.softmax, kwargs={"dim": torch_axis(p.axis, len(shapes[0]))})


def _flatten(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Flatten = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    return Call(torch.flatten, args=(torch_axis(p.start, rank), torch_axis(p.end, rank)))


def _reshape(node: Node, shapes: Sequence[Shape]) -> Emit:
    # node.shape is the inferred, fully known target: only the batch axis stays symbolic.
    return Call(torch.reshape, args=((-1, *(node.shape or ())),))


def _permute(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Permute = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    return Call(torch.permute, args=((0, *(torch_axis(d, rank) for d in p.dims)),))


def _transpose(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Transpose = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    return Call(torch.transpose, args=tuple(torch_axis(a, rank) for a in p.axes))


def _concat(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Concat = node.params  # type: ignore[assignment]
    return Call(torch.cat, kwargs={"dim": torch_axis(p.axis, len(shapes[0]))}, listed=True)


def _mean(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Mean = node.params  # type: ignore[assignment]
    axes = (p.axes,) if isinstance(p.axes, int) else p.axes
    rank = len(shapes[0])
    return Call(torch.mean, args=(tuple(torch_axis(a, rank) for a in axes),), kwargs={"keepdim": p.keepdim})


def _select(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Select = node.params  # type: ignore[assignment]
    return Call(torch.select, args=(torch_axis(p.axis, len(shapes[0])), p.position))


def _interpolate(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: resample.Interpolate = node.params  # type: ignore[assignment]
    if len(shapes) == 2:
        return Module(modules.InterpolateLike, (), dict(mode=p.mode, align_corners=p.align_corners))
    target = {"size": spatial.pair(p.size)} if p.size is not None else {"scale_factor": resample.scale_pair(p)}
    return Call(F.interpolate, kwargs={**target, "mode": p.mode, "align_corners": p.align_corners})


def _attention_batched(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: attention.Attention = node.params  # type: ignore[assignment]
    return Module(
        modules.Attention,
        (p.scale if p.scale is not None else shapes[0][-1] ** -0.5,),
        dict(dropout=p.dropout, causal=p.causal, groups=attention.kv_groups(shapes)),
    )


def _roll(node: Node, shapes: Sequence[Shape]) -> Emit:
    shifts, axes = indexing.roll_pairs(node.params)  # type: ignore[arg-type]
    rank = len(shapes[0])
    return Call(torch.roll, kwargs={"shifts": shifts, "dims": tuple(torch_axis(a, rank) for a in axes)})


def _slice(node: Node, shapes: Sequence[Shape]) -> Emit:
    axis, start, stop, step = indexing.slice_bounds(node.params, shapes[0])  # type: ignore[arg-type]
    return Call(torch.ops.aten.slice.Tensor, args=(axis + 1, start, stop, step))


def _gather(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: indexing.Gather = node.params  # type: ignore[assignment]
    return Buffer(tuple(p.index), (len(p.index),), "int64", modules.take, {"dim": torch_axis(p.axis, len(shapes[0]))})


def _parameter(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: constants.Parameter = node.params  # type: ignore[assignment]
    return Owned(tuple(p.shape), modules.batched, constants.parameter_init(p))


def _constant(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: constants.Constant = node.params  # type: ignore[assignment]
    return Buffer(tuple(constants.flat_values(p)), tuple(p.shape), "float32", modules.batched)


def _clamp(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: pointwise.Clamp = node.params  # type: ignore[assignment]
    return Call(torch.clamp, kwargs={"min": p.min, "max": p.max})


def _normalize(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: pointwise.Normalize = node.params  # type: ignore[assignment]
    return Call(F.normalize, kwargs={"dim": torch_axis(p.axis, len(shapes[0])), "eps": p.eps})


def _grid(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.Grid = node.params  # type: ignore[assignment]
    return Call(runtime_functions.grid, kwargs={"offset": p.offset, "scale": runtime.per_input(p.scale, len(shapes))})


def _grid_fill(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.GridFill = node.params  # type: ignore[assignment]
    return Call(runtime_functions.grid_fill, kwargs={"values": runtime.per_input(p.values, len(shapes))})


def _unflatten(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.Unflatten = node.params  # type: ignore[assignment]
    return Call(torch.unflatten, args=(torch_axis(p.axis, len(shapes[0])), p.sizes))


def _embedding(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.Embedding = node.params  # type: ignore[assignment]
    return Module(nn.Embedding, (p.num, p.dim), dict(padding_idx=p.padding_idx))


def _rmsnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.RMSNorm = node.params  # type: ignore[assignment]
    return Module(sequence_modules.RMSNorm, (shapes[0][-1],), dict(eps=p.eps, affine=p.affine))


def _groupnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.GroupNorm = node.params  # type: ignore[assignment]
    return Module(nn.GroupNorm, (p.groups, shapes[0][0]), dict(eps=p.eps, affine=p.affine))


def _rope(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.Rope = node.params  # type: ignore[assignment]
    return Module(
        sequence_modules.Rotary,
        (shapes[0][-1],),
        dict(
            theta=p.theta,
            factor=p.factor,
            low_freq_factor=p.low_freq_factor,
            high_freq_factor=p.high_freq_factor,
            original_max_position_embeddings=p.original_max_position_embeddings,
        ),
    )


LOWERINGS: dict[str, Lowering] = {
    "conv2d": _conv2d,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "adaptive_avgpool2d": _adaptive(F.adaptive_avg_pool2d),
    "adaptive_maxpool2d": _adaptive(F.adaptive_max_pool2d),
    "lrn": _lrn,
    "linear": _linear,
    "self_attention": _attention,
    "class_token": lambda node, shapes: Module(modules.ClassToken, (shapes[0][1],)),
    "pos_embedding": lambda node, shapes: Module(modules.PosEmbedding, tuple(shapes[0])),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "layer_scale": _layer_scale,
    "relu": _function(F.relu, inplace_ok=True),
    "relu6": _function(F.relu6, inplace_ok=True),
    "silu": _function(F.silu, inplace_ok=True),
    "sigmoid": _function(torch.sigmoid),
    "tanh": _function(torch.tanh),
    "hardswish": _function(F.hardswish, inplace_ok=True),
    "hardsigmoid": _function(F.hardsigmoid, inplace_ok=True),
    "identity": lambda node, shapes: ALIAS,
    "gelu": _gelu,
    "softmax": _softmax,
    "dropout": lambda node, shapes: Module(nn.Dropout, (), {"p": node.params.p}),  # type: ignore[union-attr]
    "drop_path": lambda node, shapes: Module(modules.DropPath, (node.params.p,)),  # type: ignore[union-attr]
    "add": lambda node, shapes: Call(operator.add, fold=True, accumulate=operator.iadd),
    "mul": lambda node, shapes: Call(operator.mul, fold=True),
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": _transpose,
    "concat": _concat,
    "mean": _mean,
    "select": _select,
    "pad": _pad,
    "conv_transpose2d": _conv_transpose2d,
    "interpolate": _interpolate,
    "upsample": _interpolate,
    "attention": _attention_batched,
    "matmul": lambda node, shapes: Call(torch.matmul),
    "roll": _roll,
    "slice": _slice,
    "gather": _gather,
    "parameter": _parameter,
    "constant": _constant,
    "sub": lambda node, shapes: Call(operator.sub),
    "abs": _function(torch.abs),
    "exp": _function(torch.exp),
    "clamp": _clamp,
    "scale": lambda node, shapes: Call(torch.mul, args=(node.params.factor,)),  # type: ignore[union-attr]
    "normalize": _normalize,
    "grid": _grid,
    "grid_fill": _grid_fill,
    "unflatten": _unflatten,
    "reshape_as": lambda node, shapes: Call(torch.Tensor.reshape_as),
    "embedding": _embedding,
    "rmsnorm": _rmsnorm,
    "groupnorm": _groupnorm,
    "rope": _rope,
}
# Ops whose torch lowering keeps a buffer the spec computes itself: `--weights` compares a reference tensor of
# the same name with it instead of loading it.
COMPUTED_BUFFERS = frozenset({"gather", "constant"})
