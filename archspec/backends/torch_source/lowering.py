"""The torch-source lowering table: op -> the Python source that computes it, as data.

An entry takes the node and its input shapes (per sample) and returns:
  * a `Module`: a constructor call assigned to the layer's attribute in `__init__`, called in `forward`;
  * a `Call`: a torch function applied to the inputs (stateless ops);
  * an `Infix`: inputs joined by an operator (`a + b`);
  * an `Owned` tensor: an `nn.Parameter` at the layer's own path, applied with an operator;
  * a `Buffer`: a fixed tensor registered as a buffer at the layer's own path, used by a fixed `form`;
  * a `Tied` call: a function of the inputs and the layer's tensors, some of them another layer's (a tied head);
  * `ALIAS`: the node is its input.
Arguments are Python values (numbers, booleans, tuples, the few strings an op's typed parameters allow);
the renderer writes them as literals, so no text from a spec is ever pasted into the file. The calls are
the ones the torch backend's table makes, so both give the same outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archspec.ir import Node, Shape
from archspec.ops import attention, constants, dense, elementwise, indexing, norm, pointwise, resample, spatial, tensor
from archspec.ops import runtime, sequence

Value = int | float | bool | str | None | tuple[Any, ...]


@dataclass(frozen=True)
class Module:
    """`constructor(*args, **kwargs)`; `helper` names a class the file must define (templates/helpers/)."""

    constructor: str
    args: tuple[Value, ...] = ()
    kwargs: Mapping[str, Value] = field(default_factory=dict)
    helper: str | None = None


@dataclass(frozen=True)
class Call:
    """`function(inputs..., *args, **kwargs)`; with `listed`, the inputs are passed as one list (torch.cat)."""

    function: str
    args: tuple[Value, ...] = ()
    kwargs: Mapping[str, Value] = field(default_factory=dict)
    listed: bool = False


@dataclass(frozen=True)
class Infix:
    operator: str


@dataclass(frozen=True)
class Owned:
    """A learned tensor the layer owns itself, at the layer's own path (no submodule; see the torch
    backend's `Owned`): `nn.Parameter(torch.full(shape, fill))` in `__init__`, `tensor <operator> input` in
    `forward`."""

    shape: tuple[int, ...]
    fill: float
    operator: str
    form: str | None = None  # instead of the operator: fixed text with {tensor} and {input} (a batched view)


# A tensor of the layer's own given to every sample of the input's batch (torch backend: modules.batched).
BATCHED = "{tensor}.unsqueeze(0).expand({input}.shape[0], *{tensor}.shape)"


@dataclass(frozen=True)
class Buffer:
    """A fixed tensor at the layer's own path, `register_buffer`ed in `__init__` from literal values, and used
    in `forward` by `form`: fixed text with {tensor} and {input} (the torch backend's `Buffer`)."""

    values: tuple[float, ...] | tuple[int, ...]
    shape: tuple[int, ...]
    dtype: str  # "float32" or "int64"
    form: str


@dataclass(frozen=True)
class Tied:
    """`function(inputs..., tensors...)` with the layer's tensors passed in (the torch backend's `Tied`): those the
    node ties (`Node.ties`) read where their owner keeps them, the rest (`own`: leaf -> shape) the layer's own
    parameters at `layer.LEAF`, starting from zeros like every tensor of the file."""

    function: str
    tensors: tuple[str, ...]
    own: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


class _Alias:
    pass


ALIAS = _Alias()
Emit = Module | Call | Infix | Owned | Buffer | Tied | _Alias
Lowering = Callable[[Node, Sequence[Shape]], Emit]


def _axis(axis: int, rank: int) -> int:
    """A per-sample axis -> the same axis of the batched tensor."""
    return axis % rank + 1


def _kw(**pairs: tuple[Value, Value]) -> dict[str, Value]:
    """Keyword arguments whose value differs from its default (each given as (value, default))."""
    return {k: v for k, (v, default) in pairs.items() if v != default}


def _conv2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.Conv2d = node.params  # type: ignore[assignment]
    padding = spatial.conv2d_padding(p)
    return Module("nn.Conv2d", (shapes[0][0], p.out), _kw(
        kernel_size=(_int_or_pair(p.kernel), None), stride=(_int_or_pair(p.stride), 1),
        padding=(padding if isinstance(padding, str) else _int_or_pair(padding), 0),
        dilation=(_int_or_pair(p.dilation), 1), groups=(p.groups, 1), bias=(p.bias, True)))


def _conv_transpose2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.ConvTranspose2d = node.params  # type: ignore[assignment]
    return Module("nn.ConvTranspose2d", (shapes[0][0], p.out), _kw(
        kernel_size=(_int_or_pair(p.kernel), None), stride=(_int_or_pair(p.stride), 1),
        padding=(_int_or_pair(p.padding), 0), output_padding=(_int_or_pair(p.output_padding), 0),
        groups=(p.groups, 1), bias=(p.bias, True), dilation=(_int_or_pair(p.dilation), 1)))


def _int_or_pair(v: int | tuple[int, int]) -> Value:
    a, b = spatial.pair(v)
    return a if a == b else (a, b)


def _maxpool2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.MaxPool2d = node.params  # type: ignore[assignment]
    return Call("F.max_pool2d", kwargs=_kw(
        kernel_size=(_int_or_pair(p.kernel), None),
        stride=(_int_or_pair(p.stride if p.stride is not None else p.kernel), None),
        padding=(_int_or_pair(p.padding), 0), dilation=(_int_or_pair(p.dilation), 1), ceil_mode=(p.ceil_mode, False)))


def _avgpool2d(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.AvgPool2d = node.params  # type: ignore[assignment]
    return Call("F.avg_pool2d", kwargs=_kw(
        kernel_size=(_int_or_pair(p.kernel), None),
        stride=(_int_or_pair(p.stride if p.stride is not None else p.kernel), None),
        padding=(_int_or_pair(p.padding), 0), ceil_mode=(p.ceil_mode, False),
        count_include_pad=(p.count_include_pad, True)))


def _adaptive(function: str) -> Lowering:
    def lower(node: Node, shapes: Sequence[Shape]) -> Emit:
        p: spatial.AdaptivePool2d = node.params  # type: ignore[assignment]
        return Call(function, args=(_int_or_pair(p.size),))
    return lower


def _lrn(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: spatial.LRN = node.params  # type: ignore[assignment]
    return Module("nn.LocalResponseNorm", (p.size,), _kw(alpha=(p.alpha, 1e-4), beta=(p.beta, 0.75), k=(p.k, 1.0)))


def _linear(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: dense.Linear = node.params  # type: ignore[assignment]
    if node.ties:
        return Tied("F.linear", ("weight", "bias") if p.bias else ("weight",), {"bias": (p.out,)} if p.bias else {})
    return Module("nn.Linear", (shapes[0][-1], p.out), _kw(bias=(p.bias, True)))


def _attention(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: dense.SelfAttention = node.params  # type: ignore[assignment]
    return Module("SelfAttention", (shapes[0][1], p.heads),
                  _kw(dropout=(p.dropout, 0.0), bias=(p.bias, True), causal=(p.causal, False)), helper="self_attention")


def _batchnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.BatchNorm = node.params  # type: ignore[assignment]
    cls = {1: "nn.BatchNorm1d", 2: "nn.BatchNorm1d", 3: "nn.BatchNorm2d", 4: "nn.BatchNorm3d"}[len(shapes[0])]
    return Module(cls, (shapes[0][0],), _kw(eps=(p.eps, 1e-5), momentum=(p.momentum, 0.1), affine=(p.affine, True)))


def _layernorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.LayerNorm = node.params  # type: ignore[assignment]
    rank, axis = len(shapes[0]), norm.norm_axis(p, shapes[0])
    options = _kw(eps=(p.eps, 1e-5), elementwise_affine=(p.affine, True), bias=(p.bias, True))
    if axis == rank - 1:
        return Module("nn.LayerNorm", (shapes[0][-1],), options)
    return Module("AxisLayerNorm", (shapes[0][axis], _axis(axis, rank)), options, helper="axis_layer_norm")


def _layer_scale(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: norm.LayerScale = node.params  # type: ignore[assignment]
    return Owned(norm.LAYER_SCALE.weights(p, shapes)[""], p.init, "*")


def _pad(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Pad = node.params  # type: ignore[assignment]
    flat = tuple(w for before, after in reversed(p.widths) for w in (before, after))  # F.pad: last axis first
    return Call("F.pad", args=(flat,), kwargs=_kw(value=(p.value, 0.0)))


def _dropout(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: elementwise.Dropout = node.params  # type: ignore[assignment]
    return Module("nn.Dropout", (p.p,) if p.p != 0.5 else ())


def _function(name: str) -> Lowering:
    return lambda node, shapes: Call(name)


def _gelu(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: elementwise.Gelu = node.params  # type: ignore[assignment]
    return Call("F.gelu", kwargs=_kw(approximate=(p.approximate, "none")))


def _softmax(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: elementwise.Softmax = node.params  # type: ignore[assignment]
    return Call("torch.softmax", kwargs={"dim": _axis(p.axis, len(shapes[0]))})


def _flatten(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Flatten = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    start, end = _axis(p.start, rank), _axis(p.end, rank)
    return Call("torch.flatten", args=(start,) if end == rank else (start, end))


def _reshape(node: Node, shapes: Sequence[Shape]) -> Emit:
    return Call("torch.reshape", args=((-1, *(node.shape or ())),))


def _permute(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Permute = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    return Call("torch.permute", args=((0, *(_axis(d, rank) for d in p.dims)),))


def _transpose(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Transpose = node.params  # type: ignore[assignment]
    rank = len(shapes[0])
    return Call("torch.transpose", args=tuple(_axis(a, rank) for a in p.axes))


def _concat(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Concat = node.params  # type: ignore[assignment]
    return Call("torch.cat", kwargs={"dim": _axis(p.axis, len(shapes[0]))}, listed=True)


def _mean(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Mean = node.params  # type: ignore[assignment]
    axes = (p.axes,) if isinstance(p.axes, int) else p.axes
    rank = len(shapes[0])
    return Call("torch.mean", args=(tuple(_axis(a, rank) for a in axes),), kwargs=_kw(keepdim=(p.keepdim, False)))


def _select(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: tensor.Select = node.params  # type: ignore[assignment]
    return Call("torch.select", args=(_axis(p.axis, len(shapes[0])), p.position))


def _interpolate(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: resample.Interpolate = node.params  # type: ignore[assignment]
    options = _kw(mode=(p.mode, "nearest"), align_corners=(p.align_corners, None))
    if len(shapes) == 2:
        return Module("InterpolateLike", (), options, helper="interpolate_like")
    target: dict[str, Value] = {"size": _int_or_pair(p.size)} if p.size is not None else {"scale_factor": _scale(p)}
    return Call("F.interpolate", kwargs={**target, **options})


def _scale(p: resample.Interpolate) -> Value:
    h, w = resample.scale_pair(p)  # type: ignore[misc]
    return h if h == w else (h, w)
def _attention_batched(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: attention.Attention = node.params  # type: ignore[assignment]
    scale = p.scale if p.scale is not None else shapes[0][-1] ** -0.5
    return Module("Attention", (scale,), _kw(dropout=(p.dropout, 0.0), causal=(p.causal, False),
                                             groups=(attention.kv_groups(shapes), 1)), helper="attention")


def _roll(node: Node, shapes: Sequence[Shape]) -> Emit:
    shifts, axes = indexing.roll_pairs(node.params)  # type: ignore[arg-type]
    rank = len(shapes[0])
    return Call("torch.roll", kwargs={"shifts": shifts, "dims": tuple(_axis(a, rank) for a in axes)})


def _slice(node: Node, shapes: Sequence[Shape]) -> Emit:
    axis, start, stop, step = indexing.slice_bounds(node.params, shapes[0])  # type: ignore[arg-type]
    return Call("torch.ops.aten.slice.Tensor", args=(axis + 1, start, stop, step))


def _gather(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: indexing.Gather = node.params  # type: ignore[assignment]
    dim = _axis(p.axis, len(shapes[0]))
    return Buffer(p.index, (len(p.index),), "int64", f"torch.index_select({{input}}, {dim}, {{tensor}})")


def _parameter(node: Node, shapes: Sequence[Shape]) -> Emit:
    # The file starts every tensor from a constant (init: rules are the torch backend's); load weights into it.
    p: constants.Parameter = node.params  # type: ignore[assignment]
    made = constants.parameter_init(p)
    fill = {"ones": 1.0, "constant": float(dict(made.args).get("value") or 0.0)}.get(made.kind, 0.0)
    return Owned(p.shape, fill, "", form=BATCHED)


def _constant(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: constants.Constant = node.params  # type: ignore[assignment]
    return Buffer(tuple(constants.flat_values(p)), p.shape, "float32", BATCHED)


def _clamp(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: pointwise.Clamp = node.params  # type: ignore[assignment]
    return Call("torch.clamp", kwargs={k: v for k, v in (("min", p.min), ("max", p.max)) if v is not None})


def _normalize(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: pointwise.Normalize = node.params  # type: ignore[assignment]
    return Call("F.normalize", kwargs={"dim": _axis(p.axis, len(shapes[0])), **_kw(eps=(p.eps, 1e-12))})


def _grid(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.Grid = node.params  # type: ignore[assignment]
    return Module("Grid", (p.offset, runtime.per_input(p.scale, len(shapes))), helper="grid")


def _grid_fill(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.GridFill = node.params  # type: ignore[assignment]
    return Module("GridFill", (runtime.per_input(p.values, len(shapes)),), helper="grid_fill")


def _unflatten(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: runtime.Unflatten = node.params  # type: ignore[assignment]
    return Call("torch.unflatten", args=(_axis(p.axis, len(shapes[0])), p.sizes))


def _embedding(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.Embedding = node.params  # type: ignore[assignment]
    return Module("nn.Embedding", (p.num, p.dim), _kw(padding_idx=(p.padding_idx, None)))


def _rmsnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.RMSNorm = node.params  # type: ignore[assignment]
    return Module("RMSNorm", (shapes[0][-1],), _kw(eps=(p.eps, 1e-6), affine=(p.affine, True)), helper="rms_norm")


def _groupnorm(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.GroupNorm = node.params  # type: ignore[assignment]
    return Module("nn.GroupNorm", (p.groups, shapes[0][0]), _kw(eps=(p.eps, 1e-5), affine=(p.affine, True)))


def _rope(node: Node, shapes: Sequence[Shape]) -> Emit:
    p: sequence.Rope = node.params  # type: ignore[assignment]
    return Module("Rotary", (shapes[0][-1],), _kw(
        theta=(p.theta, 10000.0), factor=(p.factor, 1.0), low_freq_factor=(p.low_freq_factor, 1.0),
        high_freq_factor=(p.high_freq_factor, 4.0),
        original_max_position_embeddings=(p.original_max_position_embeddings, 8192)), helper="rotary")


LOWERINGS: dict[str, Lowering] = {
    "conv2d": _conv2d,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "adaptive_avgpool2d": _adaptive("F.adaptive_avg_pool2d"),
    "adaptive_maxpool2d": _adaptive("F.adaptive_max_pool2d"),
    "lrn": _lrn,
    "linear": _linear,
    "self_attention": _attention,
    "class_token": lambda node, shapes: Module("ClassToken", (shapes[0][1],), helper="class_token"),
    "pos_embedding": lambda node, shapes: Module("PosEmbedding", tuple(shapes[0]), helper="pos_embedding"),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "layer_scale": _layer_scale,
    "relu": _function("F.relu"),
    "relu6": _function("F.relu6"),
    "silu": _function("F.silu"),
    "sigmoid": _function("torch.sigmoid"),
    "tanh": _function("torch.tanh"),
    "hardswish": _function("F.hardswish"),
    "hardsigmoid": _function("F.hardsigmoid"),
    "identity": lambda node, shapes: ALIAS,
    "gelu": _gelu,
    "softmax": _softmax,
    "dropout": _dropout,
    "drop_path": lambda node, shapes: Module("DropPath", (node.params.p,), helper="drop_path"),  # type: ignore[union-attr]
    "add": lambda node, shapes: Infix("+"),
    "mul": lambda node, shapes: Infix("*"),
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
    "matmul": lambda node, shapes: Call("torch.matmul"),
    "roll": _roll,
    "slice": _slice,
    "gather": _gather,
    "parameter": _parameter,
    "constant": _constant,
    "sub": lambda node, shapes: Infix("-"),
    "abs": _function("torch.abs"),
    "exp": _function("torch.exp"),
    "clamp": _clamp,
    "scale": lambda node, shapes: Call("torch.mul", args=(node.params.factor,)),  # type: ignore[union-attr]
    "normalize": _normalize,
    "grid": _grid,
    "grid_fill": _grid_fill,
    "unflatten": _unflatten,
    "reshape_as": lambda node, shapes: Call("torch.Tensor.reshape_as"),
    "embedding": _embedding,
    "rmsnorm": _rmsnorm,
    "groupnorm": _groupnorm,
    "rope": _rope,
}
