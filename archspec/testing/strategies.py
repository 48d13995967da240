"""Hypothesis strategies that generate archspec specs, for property-based tests.

    from hypothesis import given
    from archspec.testing.strategies import invalid_specs, valid_specs

    @given(valid_specs())
    def test_compiles(case):
        text, facts = case              # YAML text, and the figures it must compile to
        ...

    @given(invalid_specs())
    def test_rejected(case):
        ...                             # case.text must fail with one of case.codes, at case.line

`valid_specs()` draws full specs that are valid by construction, on a random [C, H, W] input (C 1-8,
H and W 8-40): convolutions (kernel 1-5, stride 1-3, padding 0-2 or `same`, dilation 1-2, groups,
bias, square or per-axis), batch norm, activations, max/average pooling (ceil_mode, padding),
dropout, residual blocks (a `blocks:` entry applied with `repeat:`, its projection shortcut under
`if:`), inline residuals (`add` of two or three inputs), concat branches, squeeze-excite gating (`mul`
with broadcasting), layers switched off with `if:` or `repeat: 0`, then flatten and dense layers
(linear, layer norm), sometimes on a token-shaped [C, H*W] tensor, or after a global mean, or after a
small transformer: tokens by flatten/reshape and transpose/permute, a linear embedding, class token,
position embedding, pre-norm encoder blocks (self_attention, drop_path, an MLP sized by `in_shape`),
then select or mean. Also lrn, identity, softmax, adaptive max pooling, layer scale and layer norm
over any axis of a feature map, constant padding of every axis, and more activations, some
named like Python builtins. Decoder-style upsampling: conv_transpose2d (stride, padding, output
padding, dilation, groups), interpolate / upsample (nearest, nearest-exact, bilinear; by a scale or to
a size), and U-Net decoder levels: a block with two named inputs (`inputs: [x, skip]`) applied with
`from: [below, skip]`, which upsamples the level below to the skip's size (a transposed convolution,
a scale of 2, or interpolation to its second input's size), concatenates and convolves. Integer arguments are sometimes written as expressions of the spec's
parameters. Shapes are tracked while drawing, so no layer gets an empty output. The expected shapes, parameter and MAC counts in `SpecFacts` are computed here with
torch's formulas, written out independently of archspec's ops, so they check the core rather than
restate it.

`invalid_specs()` draws specs that must be rejected: mutations of valid specs, each with the error
codes one of the reported errors must have and, where it is unambiguous, the line it must point at.
`MUTATIONS` lists the kinds; `invalid_specs(kinds=...)` restricts the draw to some of them.

This module is for tests only: it imports hypothesis (a dev dependency, `pip install archspec[dev]`)
at module top. It never imports torch; of archspec it reads only the names of ops, op arguments and
expression functions (to make near misses that are not real names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import copy
from dataclasses import dataclass
import json
from typing import Any, NamedTuple

from hypothesis import strategies as st
import yaml

from archspec.expr import FUNCTIONS
from archspec.registry import default_registry

__all__ = ["MUTATIONS", "InvalidSpec", "SpecFacts", "conv_output", "conv_transpose_output", "dump", "invalid_specs", "pool_output",
           "valid_specs"]

Shape = tuple[int, ...]
Data = dict[str, Any]
Path = tuple[str | int, ...]
Node = tuple[str, str, Shape, int, int]  # name suffix, op, output shape, params, MACs

ACTIVATIONS = ("relu", "gelu", "silu", "sigmoid", "hardswish", "relu6", "tanh", "hardsigmoid")
MAX_CHANNELS = 24
# Valid layer names that are also names in generated Python code (builtins, modules, the forward's
# argument); activations (function calls, no submodule) sometimes get one. Not `self`: see
# tests/test_properties.py::test_core_bug_layer_named_self.
# Attributes of the built module (`forward`, `type`, `float`, ...) are refused by validation (AS409).
TRICKY_NAMES = ("torch", "x", "getattr", "operator", "math", "inf", "nan", "device", "output", "input_1",
                "print", "list", "sum", "len", "range", "max", "relu", "F", "nn", "fx", "None_", "bool", "int")
LAYER_KEYS = ("op", "name", "from", "repeat", "if")
_FAKE_BOOLS = ("yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n", "Y", "N")


# -- torch's size formulas, written out ---------------------------------------------------------------
def conv_output(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """torch.nn.Conv2d's output length along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_output(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """ATen's pooling_output_shape: with ceil_mode the last window must start inside the input or
    its left padding."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output(size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> int:
    """torch.nn.ConvTranspose2d's output length along one axis."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def dump(data: Any) -> str:
    """Spec data as YAML text: keys in insertion order, leaf collections in flow style, no wrapping."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=10_000, allow_unicode=True)


# -- results ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecFacts:
    """What a generated spec must compile to. Shapes are per sample (batch axis excluded)."""

    input: Shape
    output: Shape
    params: int
    macs: int
    shapes: Mapping[str, Shape]  # every op node of the IR: dotted name -> output shape
    ops: Mapping[str, str]  # every op node: dotted name -> op name


class InvalidSpec(NamedTuple):
    """A spec text that must fail with a located error having one of `codes`; when `line` is given,
    such an error must point at that line."""

    text: str
    codes: frozenset[str]
    mutation: str
    line: int | None = None


@dataclass(frozen=True)
class _LayerInfo:
    """Where a written layer is, and what a mutation needs to know about it."""

    path: Path
    op: str
    block: bool  # op is a block of the spec
    live: bool  # lowering evaluates its arguments (not under a false if:, not repeat: 0)
    before: tuple[str, ...]  # names its from: may use (earlier layers of its scope, input)
    skipped_before: frozenset[str]  # of those, layers switched off by if:


@dataclass(frozen=True)
class _Case:
    data: Data
    facts: SpecFacts
    layers: tuple[_LayerInfo, ...]
    scopes: Mapping[Path, tuple[str, ...]]  # layer-list path -> every name defined in it
    env: Mapping[str, int]  # spec parameters and vars with int values
    flatten: int  # index in layers: of the (first) flatten
    classifier_in: int  # input features of the last linear layer


# -- the valid-spec writer ----------------------------------------------------------------------------
class _Writer:
    """Draws the spec's layer list while computing the IR nodes each layer must produce."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], shape: Shape, env: dict[str, int]):
        self.draw = draw
        self.env = env
        self.layers: list[Data] = []
        self.blocks: Data = {}
        self.infos: list[_LayerInfo] = []
        self.scopes: dict[Path, tuple[str, ...]] = {}
        self.names: dict[str, Shape] = {"input": shape}
        self.skipped: set[str] = set()
        self.prev = "input"
        self.auto: dict[str, int] = {}
        self.count = 0
        self.shapes: dict[str, Shape] = {}
        self.ops: dict[str, str] = {}
        self.params = 0
        self.macs = 0
        self.flatten = -1
        self.classifier_in = 0

    # -- bookkeeping ---------------------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        return self.names[self.prev]

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def node(self, name: str, op: str, shape: Shape, params: int = 0, macs: int = 0) -> None:
        assert name not in self.shapes, name
        assert all(d >= 1 for d in shape), (name, shape)
        self.shapes[name], self.ops[name] = shape, op
        self.params += params
        self.macs += macs

    def _auto_name(self, op: str) -> str:
        while True:  # lowering's rule: op, op_1, op_2 ... skipping names already taken
            n = self.auto.get(op, 0)
            self.auto[op] = n + 1
            candidate = op if n == 0 else f"{op}_{n}"
            if candidate not in self.names:
                return candidate

    def put(self, layer: Data, out: Shape, nodes: Sequence[Node], *, live: bool = True, skip: bool = False,
            block: bool = False) -> str:
        local = layer.get("name") or self._auto_name(layer["op"])
        self.infos.append(_LayerInfo(("layers", len(self.layers)), layer["op"], block, live and not skip,
                                     tuple(self.names), frozenset(self.skipped)))
        self.layers.append(layer)
        for suffix, op, shape, params, macs in nodes:
            self.node(local + suffix, op, shape, params, macs)
        if skip:  # identity: references read its input; the previous layer stays the default input
            self.names[local] = self.names[layer.get("from", self.prev)]
            self.skipped.add(local)
        else:
            self.names[local] = out
            self.skipped.discard(local)
            self.prev = local
        return local

    def op(self, op: str, args: Data | None = None, *, name: str | None = None, src: str | list[str] | None = None,
           out: Shape | None = None, params: int = 0, macs: int = 0) -> str:
        layer: Data = {"name": name} if name else {}
        layer["op"] = op
        if src is not None:
            layer["from"] = src
        layer.update(args or {})
        shape = self.shape if out is None else out
        return self.put(layer, shape, [("", op, shape, params, macs)])

    # -- drawing helpers -----------------------------------------------------------------------------
    def chance(self, p: float = 0.5) -> bool:
        return bool(self.draw(st.integers(0, 99)) < p * 100)

    def num(self, value: int) -> int | str:
        """`value`, or an expression that evaluates to it."""
        choice = self.draw(st.integers(0, 7))
        if choice == 0:
            return f"${{{value}}}"
        if choice == 1 and value > 1:
            a = self.draw(st.integers(1, value - 1))
            return f"${{{a} + {value - a}}}"
        if choice == 2:
            fits = [n for n, v in self.env.items() if v >= 1 and value % v == 0 and n != "num_classes"]  # only the
            # classifier reads num_classes, so overriding it changes nothing else
            if fits:
                name = self.draw(st.sampled_from(sorted(fits)))
                k = value // self.env[name]
                return f"${name}" if k == 1 else f"${{{name} * {k}}}"
        return value

    def pair(self, a: int, b: int) -> int | list[int]:
        if a == b and self.chance(0.8):
            return a
        return [a, b]

    def activation(self, name: str | None = None, src: str | None = None) -> str:
        kind = self.draw(st.sampled_from(ACTIVATIONS))
        if name is None and self.chance(0.1):
            name = self.draw(st.sampled_from([n for n in TRICKY_NAMES if n not in self.names]))
        args: Data = {}
        if kind == "gelu" and self.chance(0.5):
            args["approximate"] = self.draw(st.sampled_from(["none", "tanh"]))
        return self.op(kind, args, name=name, src=src)

    def batchnorm(self, name: str | None = None) -> str:
        c = self.shape[0]
        args: Data = {}
        if self.chance(0.3):
            args["eps"] = self.draw(st.sampled_from([1e-5, 1e-3, 0.01]))
        if self.chance(0.3):
            args["momentum"] = self.draw(st.sampled_from([0.1, 0.01, None]))
        affine = not self.chance(0.2)
        if not affine:
            args["affine"] = False
        return self.op("batchnorm", args, name=name, params=2 * c if affine else 0)

    # -- convolution ---------------------------------------------------------------------------------
    def _axis(self, size: int, same: bool, stride: int | None = None) -> tuple[int, int, int, int]:
        """kernel, stride, padding, dilation along one axis, leaving an output of at least 1."""
        draw = self.draw
        dilation = draw(st.integers(1, 2))
        if same:
            return draw(st.integers(1, 5)), 1, 0, dilation
        padding = draw(st.integers(0, 2))
        kernels = [k for k in range(1, 6) if dilation * (k - 1) + 1 <= size + 2 * padding]
        stride = draw(st.integers(1, 3)) if stride is None else stride
        return draw(st.sampled_from(kernels)), stride, padding, dilation

    def conv(self, name: str | None = None, *, out: int | None = None, src: str | None = None) -> str:
        c, h, w = self.names[src] if src is not None else self.shape
        draw = self.draw
        groups = draw(st.sampled_from(_divisors(c))) if self.chance(0.3) else 1
        if out is None:
            out = groups * draw(st.integers(1, max(1, MAX_CHANNELS // groups)))
        elif out % groups:
            groups = 1
        strided = self.chance(0.35)
        same = not strided and self.chance(0.3)
        square = self.chance(0.7)
        stride = None if strided else 1
        kh, sh, ph, dh = self._axis(min(h, w) if square else h, same, stride)
        kw, sw, pw, dw = (kh, sh, ph, dh) if square else self._axis(w, same, stride if not strided else None)
        if same:
            oh, ow = h, w
        else:
            oh, ow = conv_output(h, kh, sh, ph, dh), conv_output(w, kw, sw, pw, dw)
        args: Data = {"out": self.num(out), "kernel": self.pair(kh, kw)}
        if (sh, sw) != (1, 1) or self.chance(0.1):
            args["stride"] = self.pair(sh, sw)
        if same:
            args["padding"] = "same"
        elif (ph, pw) != (0, 0) or self.chance(0.1):
            args["padding"] = "valid" if (ph, pw) == (0, 0) and self.chance(0.5) else self.pair(ph, pw)
        if (dh, dw) != (1, 1):
            args["dilation"] = self.pair(dh, dw)
        if groups != 1:
            args["groups"] = self.num(groups)
        bias = self.chance(0.6)
        if not bias or self.chance(0.2):
            args["bias"] = bias
        if self.chance(0.15):
            args["in_channels"] = c
        per_out = (c // groups) * kh * kw
        return self.op("conv2d", args, name=name, src=src, out=(out, oh, ow),
                       params=out * per_out + (out if bias else 0), macs=out * oh * ow * per_out)

    def conv_keep(self, out: int, name: str, src: str | None = None) -> str:
        """A stride-1 convolution that keeps H and W (odd kernel, symmetric or `same` padding)."""
        c, h, w = self.names[src] if src is not None else self.shape
        k = self.draw(st.sampled_from([1, 3, 5]))
        args: Data = {"out": self.num(out), "kernel": k, "padding": "same" if self.chance(0.4) else (k - 1) // 2}
        bias = self.chance(0.5)
        if not bias:
            args["bias"] = False
        return self.op("conv2d", args, name=name, src=src, out=(out, h, w),
                       params=out * c * k * k + (out if bias else 0), macs=out * h * w * c * k * k)

    # -- pooling -------------------------------------------------------------------------------------
    def pool(self, name: str | None = None) -> str:
        c, h, w = self.shape
        draw = self.draw
        op = draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
        ceil_mode = self.chance(0.3)
        stride = draw(st.sampled_from([None, 1, 2, 3]))
        dilation = draw(st.integers(1, 2)) if op == "maxpool2d" and self.chance(0.2) else 1
        options = [(k, p) for k in range(1, 4) for p in range(0, k // 2 + 1)
                   if min(pool_output(n, k, stride or k, p, dilation, ceil_mode) for n in (h, w)) >= 1]
        kernel, padding = draw(st.sampled_from(options))
        s = stride or kernel
        args: Data = {"kernel": kernel}
        if stride is not None:
            args["stride"] = stride
        if padding:
            args["padding"] = padding
        if dilation != 1:
            args["dilation"] = dilation
        if ceil_mode:
            args["ceil_mode"] = True
        if op == "avgpool2d" and self.chance(0.3):
            args["count_include_pad"] = self.chance(0.5)
        out = (c, pool_output(h, kernel, s, padding, dilation, ceil_mode), pool_output(w, kernel, s, padding, dilation, ceil_mode))
        return self.op(op, args, name=name, out=out)

    # -- stages --------------------------------------------------------------------------------------
    def plain(self) -> None:
        name = self.fresh("conv")
        self.conv(name)
        if self.chance(0.5):
            self.batchnorm(name.replace("conv", "bn"))
        if self.chance(0.7):
            self.activation()
        if self.chance(0.3):
            self.pool(self.fresh("pool") if self.chance(0.5) else None)

    def misc(self) -> None:
        c, h, w = self.shape
        kind = self.draw(st.sampled_from(["pool", "act", "dropout", "bn", "lrn", "identity", "drop_path",
                                          "adaptive_max", "softmax", "layer_scale", "axis_norm", "pad",
                                          "conv_transpose", "interpolate"]))
        if kind == "conv_transpose":
            self.conv_transpose()
        elif kind == "interpolate":
            self.interpolate()
        elif kind == "layer_scale":  # one learned scale per entry of the axis: (n, 1, ...) broadcasting
            axis = self.draw(st.sampled_from([0, 1, 2, -1, -3]))
            args: Data = {"axis": axis} if axis or self.chance(0.3) else {}
            if self.chance(0.5):
                args["init"] = self.draw(st.sampled_from([1e-6, 0.1, 1.0]))
            self.op("layer_scale", args, params=self.shape[axis])
        elif kind == "axis_norm":  # layer norm over channels (ConvNeXt's LayerNorm2d) or another axis
            axis = self.draw(st.sampled_from([0, -3, 1, -1]))
            args = {"axis": axis}
            if self.chance(0.3):
                args["eps"] = 1e-6
            affine, bias = not self.chance(0.2), not self.chance(0.2)
            if not affine:
                args["affine"] = False
            if not bias:
                args["bias"] = False
            self.op("layernorm", args, params=(self.shape[axis] * (2 if bias else 1)) if affine else 0)
        elif kind == "pad":  # constant padding of every axis, e.g. zero channels of an option-A shortcut
            widths = [[self.draw(st.integers(0, 2)), self.draw(st.integers(0, 2))] for _ in range(3)]
            args = {"widths": widths}
            if self.chance(0.4):
                args["value"] = self.draw(st.sampled_from([1.0, -0.5, 0.0]))
            self.op("pad", args, out=(c + sum(widths[0]), h + sum(widths[1]), w + sum(widths[2])))
        elif kind == "pool":
            self.pool()
        elif kind == "lrn":
            self.op("lrn", {"size": self.draw(st.integers(1, 5)), **({"alpha": 1e-3, "k": 2.0} if self.chance(0.5) else {})})
        elif kind == "identity":
            self.op("identity")
        elif kind == "drop_path":
            self.op("drop_path", {"p": self.draw(st.sampled_from([0.0, 0.2, 0.5]))})
        elif kind == "softmax":
            self.op("softmax", {"axis": self.draw(st.sampled_from([0, 1, -1]))})
        elif kind == "adaptive_max":
            a, b = self.draw(st.integers(1, h)), self.draw(st.integers(1, w))
            self.op("adaptive_maxpool2d", {"size": self.pair(a, b)}, out=(c, a, b))
        elif kind == "act":
            self.activation()
        elif kind == "bn":
            self.batchnorm()
        else:
            p = self.draw(st.sampled_from([0.0, 0.1, 0.25, 0.5]))
            self.op("dropout", {} if p == 0.5 and self.chance(0.5) else {"p": p})

    # -- upsampling ----------------------------------------------------------------------------------
    def conv_transpose(self, name: str | None = None) -> str:
        c, h, w = self.shape
        draw = self.draw
        small = h * w <= 400  # strides grow the map: keep later stages cheap
        groups = draw(st.sampled_from(_divisors(c))) if self.chance(0.3) else 1
        out = groups * draw(st.integers(1, max(1, MAX_CHANNELS // groups)))
        k, stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2)) if small else 1, draw(st.integers(1, 2))
        padding = draw(st.integers(0, dilation * (k - 1) // 2))
        extra = draw(st.integers(0, max(stride, dilation) - 1))
        oh, ow = (conv_transpose_output(n, k, stride, padding, extra, dilation) for n in (h, w))
        args: Data = {"out": self.num(out), "kernel": k}
        for key, value, default in (("stride", stride, 1), ("padding", padding, 0), ("output_padding", extra, 0),
                                    ("dilation", dilation, 1), ("groups", groups, 1)):
            if value != default or self.chance(0.1):
                args[key] = value
        bias = self.chance(0.6)
        if not bias:
            args["bias"] = False
        # every input position meets the whole kernel once per output channel of its group
        return self.op("conv_transpose2d", args, name=name, out=(out, oh, ow),
                       params=c * (out // groups) * k * k + (out if bias else 0), macs=h * w * c * (out // groups) * k * k)

    def _mode(self) -> Data:
        mode = self.draw(st.sampled_from(["nearest", "nearest-exact", "bilinear"]))
        args: Data = {} if mode == "nearest" and self.chance(0.5) else {"mode": mode}
        if mode == "bilinear" and self.chance(0.5):
            args["align_corners"] = self.chance(0.5)
        return args

    def interpolate(self) -> str:
        c, h, w = self.shape
        scales = [0.5, 0.75, 1, [1, 0.5]] + ([1.5, 2, [2, 1], [1.25, 3]] if h * w <= 400 else [])
        scale = self.draw(st.sampled_from(scales))
        sh, sw = (scale, scale) if not isinstance(scale, list) else scale
        oh, ow = int(h * sh), int(w * sw)  # torch: floor(side * scale)
        if min(oh, ow) < 1 or self.chance(0.3):
            args: Data = {"size": self.pair(self.draw(st.integers(1, 2 * h)), self.draw(st.integers(1, 2 * w)))}
            oh, ow = (args["size"], args["size"]) if isinstance(args["size"], int) else args["size"]
        else:
            args = {"scale": scale}
        return self.op(self.draw(st.sampled_from(["interpolate", "upsample"])), {**args, **self._mode()}, out=(c, oh, ow))

    def decoder(self) -> None:
        """A U-Net decoder level: max pooling, then a block with two named inputs applied to the pooled map
        and the map before it (`from: [below, skip]`): the level below upsampled to the skip's size, the two
        concatenated on channels, and a 3x3 convolution."""
        src, (c, h, w) = self.prev, self.shape
        if min(h, w) < 2:
            return self.plain()
        draw = self.draw
        stem = self.fresh("level")
        below = self.op("maxpool2d", {"kernel": 2}, name=f"{stem}_down", out=(c, h // 2, w // 2))
        lh, lw = h // 2, w // 2
        if self.chance(0.5):  # a wider level below, as in a U-Net
            cb = draw(st.integers(1, MAX_CHANNELS))
            below = self.op("conv2d", {"out": self.num(cb), "kernel": 1}, name=f"{stem}_mid", out=(cb, lh, lw),
                            params=cb * c + cb, macs=cb * lh * lw * c)
        cb = self.shape[0]
        x, skip = draw(st.sampled_from([("x", "skip"), ("below", "skip"), ("low", "high")]))
        even = h % 2 == 0 and w % 2 == 0
        kind = draw(st.sampled_from(["like", "transposed", "scale"] if even else ["like"]))
        width = draw(st.integers(1, MAX_CHANNELS))
        nodes: list[Node] = []
        if kind == "transposed":
            up: Data = {"name": "up", "op": "conv_transpose2d", "out": "$width", "kernel": 2, "stride": 2}
            u = width
            nodes.append((".up", "conv_transpose2d", (u, h, w), cb * u * 4 + u, lh * lw * cb * u * 4))
        else:
            up = {"name": "up", "op": draw(st.sampled_from(["interpolate", "upsample"]))}
            up.update({"from": [x, skip]} if kind == "like" else {"scale": 2})
            up.update(self._mode())
            u = cb
            nodes.append((".up", up["op"], (u, h, w), 0, 0))
        if kind != "like" and self.chance(0.3):
            up["from"] = x  # the first layer reads the first input anyway
        order = [skip, "up"] if self.chance(0.7) else ["up", skip]
        layers = [up, {"name": "cat", "op": "concat", "from": order},
                  {"name": "conv", "op": "conv2d", "out": "$width", "kernel": 3, "padding": 1}]
        nodes.append((".cat", "concat", (c + u, h, w), 0, 0))
        nodes.append((".conv", "conv2d", (width, h, w), width * (c + u) * 9 + width, width * h * w * (c + u) * 9))
        block = self.fresh("up_block")
        self.blocks[block] = {"inputs": [x, skip], "params": {"width": {"type": "int"}}, "layers": layers}
        self.put({"name": stem, "op": block, "from": [below, src], "width": self.num(width)}, (width, h, w), nodes,
                 block=True)
        where: Path = ("blocks", block, "layers")
        names = [x, skip, "up", "cat", "conv"]
        for k, layer in enumerate(layers):
            self.infos.append(_LayerInfo((*where, k), layer["op"], False, True, tuple(names[:k + 2]), frozenset()))
        self.scopes[where] = tuple(names)

    def residual_inline(self) -> None:
        src, (c, _, _) = self.prev, self.shape
        stem = self.fresh("res")
        conv = self.conv_keep(c, f"{stem}_conv")
        if self.chance(0.5):
            self.batchnorm(f"{stem}_bn")
        act = self.activation(f"{stem}_act")
        inputs = [act, conv, src] if self.chance(0.3) else [act, src]
        if self.chance(0.5):
            inputs.reverse()
        self.op("add", name=stem, src=inputs)

    def concat(self) -> None:
        src, (c, h, w) = self.prev, self.shape
        stem = self.fresh("cat")
        parts: list[str] = []
        for k, kind in enumerate(self.draw(st.lists(st.sampled_from(["conv1", "convk", "pool", "src"]), min_size=2, max_size=3))):
            name = f"{stem}_{k}"
            if kind == "src":
                parts.append(src)
            elif kind == "pool":
                op = self.draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
                parts.append(self.op(op, {"kernel": 3, "stride": 1, "padding": 1}, name=name, src=src, out=(c, h, w)))
            elif kind == "conv1":
                out = self.draw(st.integers(1, 12))
                parts.append(self.op("conv2d", {"out": self.num(out), "kernel": 1}, name=name, src=src, out=(out, h, w),
                                     params=out * c + out, macs=out * h * w * c))
            else:
                parts.append(self.conv_keep(self.draw(st.integers(1, 12)), name, src=src))
        total = sum(self.names[p][0] for p in parts)
        args = {"axis": self.draw(st.sampled_from([0, -3]))} if self.chance(0.4) else {}
        self.op("concat", args, name=stem, src=parts, out=(total, h, w))

    def squeeze_excite(self) -> None:
        src, (c, h, w) = self.prev, self.shape
        stem = self.fresh("se")
        r = self.draw(st.integers(1, max(1, c // 2)))
        self.op("adaptive_avgpool2d", {"size": self.draw(st.sampled_from([1, [1, 1]]))}, name=f"{stem}_pool", out=(c, 1, 1))
        self.op("conv2d", {"out": self.num(r), "kernel": 1}, name=f"{stem}_reduce", out=(r, 1, 1), params=r * c + r, macs=r * c)
        self.op("relu")
        self.op("conv2d", {"out": c, "kernel": 1}, name=f"{stem}_expand", out=(c, 1, 1), params=c * r + c, macs=c * r)
        gate = self.op(self.draw(st.sampled_from(["sigmoid", "hardsigmoid"])), name=f"{stem}_gate")
        inputs = [src, gate] if self.chance(0.5) else [gate, src]
        self.op("mul", name=stem, src=inputs, out=(c, h, w))

    def repeated(self) -> None:
        """A chain of same-size convolutions written once with repeat:, widths from the index."""
        c, h, w = self.shape
        n = self.draw(st.integers(0, 3))
        index = self.draw(st.sampled_from(["i", "j"]))
        base, step = self.draw(st.integers(1, 12)), self.draw(st.integers(0, 4))
        k = self.draw(st.sampled_from([1, 3]))
        layer: Data = {"name": self.fresh("rep"), "op": "conv2d",
                       "repeat": n if index == "i" and self.chance(0.7) else {"times": self.num(n), "index": index},
                       "out": f"${{{base} + {index} * {step}}}" if step else base, "kernel": k, "padding": (k - 1) // 2}
        nodes: list[Node] = []
        cin = c
        for j in range(n):
            out = base + j * step
            nodes.append((f".{j}", "conv2d", (out, h, w), out * cin * k * k + out, out * h * w * cin * k * k))
            cin = out
        self.put(layer, (cin, h, w), nodes, live=n > 0)

    def switched_off(self) -> None:
        """A layer under a false if:; sometimes the next layer reads it by name (it reads its input)."""
        name = self.fresh("off")
        cond = self.draw(st.sampled_from([False, "${num_classes < 0}", "${base > 1000 and True}"]))
        op = self.draw(st.sampled_from(["batchnorm", "conv2d", "relu"]))
        args: Data = {"out": 3, "kernel": 3} if op == "conv2d" else {}
        self.put({"name": name, "op": op, "if": cond, **args}, self.shape, [], skip=True)
        if self.chance(0.5):
            self.activation(src=name)

    def residual_stage(self) -> None:
        """A residual block declared under blocks: and applied with repeat:."""
        draw = self.draw
        block = self.fresh("res_block")
        c, h, w = self.shape
        k1 = draw(st.sampled_from([1, 3, 5]))
        d1 = draw(st.integers(1, 2)) if k1 > 1 else 1
        p1 = d1 * (k1 - 1) // 2
        k2 = draw(st.sampled_from([1, 3]))
        depthwise = self.chance(0.3)
        bn, bias2 = self.chance(0.6), self.chance(0.5)
        act1, act2 = draw(st.sampled_from(ACTIVATIONS)), draw(st.sampled_from(ACTIVATIONS))
        by_var = self.chance(0.5)  # shortcut chosen by a block var from in_channels, or by a parameter
        shortcut_bn = bn and self.chance(0.5)
        named_add = self.chance(0.5)

        params: Data = {"width": {"type": "int"}, "stride": 1}
        block_def: Data = {"params": params}
        if by_var:
            block_def["vars"] = {"project": "${stride != 1 or in_channels != width}"}
            cond = "$project"
        else:
            params["downsample"] = False
            cond = "$downsample"
        layers: list[Data] = [{"name": "conv1", "op": "conv2d", "out": "$width", "kernel": k1, "stride": "$stride",
                               "padding": p1, **({"dilation": d1} if d1 > 1 else {}), "bias": False}]
        if bn:
            layers.append({"name": "bn1", "op": "batchnorm"})
        layers.append({"op": act1})
        conv2: Data = {"name": "conv2", "op": "conv2d", "out": "$width", "kernel": k2,
                       "padding": "same" if self.chance(0.3) else (k2 - 1) // 2}
        if depthwise:
            conv2["groups"] = "$width"
        if not bias2:
            conv2["bias"] = False
        layers.append(conv2)
        if bn:
            layers.append({"name": "bn2", "op": "batchnorm"})
        main = layers[-1]["name"]
        layers.append({"name": "shortcut", "op": "conv2d", "from": "input", "if": cond, "out": "$width", "kernel": 1,
                       "stride": "$stride", "bias": False})
        if shortcut_bn:
            layers.append({"name": "shortcut_bn", "op": "batchnorm", "from": "shortcut", "if": cond})
        merge: Data = {"name": "merge"} if named_add else {}
        merge.update({"op": "add", "from": [main, layers[-1]["name"]] if self.chance(0.5) else [layers[-1]["name"], main]})
        layers.append(merge)
        layers.append({"op": act2})
        block_def["layers"] = layers
        self.blocks[block] = block_def

        # the application
        n = draw(st.integers(1, 3))
        stride = draw(st.integers(1, 2))
        width = draw(st.integers(1, 16))
        grow = draw(st.integers(0, 2)) if by_var else 0
        index = draw(st.sampled_from(["i", "j"]))
        use: Data = {"name": self.fresh("stage"), "op": block,
                     "repeat": n if index == "i" else {"times": n, "index": index},
                     "width": self.num(width) if not grow else f"${{{width} + {grow} * {index}}}",
                     "stride": f"${{{stride} if {index} == 0 else 1}}"}
        if not by_var:
            use["downsample"] = f"${{{index} == 0}}"
        nodes: list[Node] = []
        any_shortcut = False
        for j in range(n):
            wj, sj = width + grow * j, stride if j == 0 else 1
            shortcut = (sj != 1 or c != wj) if by_var else j == 0
            any_shortcut |= shortcut
            oh, ow = conv_output(h, k1, sj, p1, d1), conv_output(w, k1, sj, p1, d1)
            out = (wj, oh, ow)
            g = wj if depthwise else 1
            first_act, second_act = act1, (f"{act2}_1" if act2 == act1 else act2)  # lowering's auto names
            nodes += [(f".{j}.conv1", "conv2d", out, wj * c * k1 * k1, wj * oh * ow * c * k1 * k1)]
            if bn:
                nodes.append((f".{j}.bn1", "batchnorm", out, 2 * wj, 0))
            nodes.append((f".{j}.{first_act}", act1, out, 0, 0))
            nodes.append((f".{j}.conv2", "conv2d", out, wj * (wj // g) * k2 * k2 + (wj if bias2 else 0),
                          wj * oh * ow * (wj // g) * k2 * k2))
            if bn:
                nodes.append((f".{j}.bn2", "batchnorm", out, 2 * wj, 0))
            if shortcut:
                nodes.append((f".{j}.shortcut", "conv2d", out, wj * c, wj * oh * ow * c))
                if shortcut_bn:
                    nodes.append((f".{j}.shortcut_bn", "batchnorm", out, 2 * wj, 0))
            nodes.append((f".{j}.{'merge' if named_add else 'add'}", "add", out, 0, 0))
            nodes.append((f".{j}.{second_act}", act2, out, 0, 0))
            c, h, w = out
        self.put(use, (c, h, w), nodes, block=True)

        # what mutations may touch in the block's layers
        where: Path = ("blocks", block, "layers")
        local: list[str] = ["input"]
        off: list[str] = []  # switched off in every application
        auto: dict[str, int] = {}
        for k, layer in enumerate(layers):
            name = layer.get("name")
            if name is None:
                count = auto.get(layer["op"], 0)
                auto[layer["op"]] = count + 1
                name = layer["op"] if count == 0 else f"{layer['op']}_{count}"
            live = layer.get("if") is None or any_shortcut
            self.infos.append(_LayerInfo((*where, k), layer["op"], False, live, tuple(local), frozenset(off)))
            local.append(name)
            if not live:
                off.append(name)
        self.scopes[where] = tuple(local)

    # -- the head ------------------------------------------------------------------------------------
    def head(self) -> None:
        draw = self.draw
        c, h, w = self.shape
        if self.chance(0.4):
            a, b = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            self.op("adaptive_avgpool2d", {"size": self.pair(a, b)}, name="pool" if self.chance(0.5) else None, out=(c, a, b))
            c, h, w = self.shape
        kind = draw(st.sampled_from(["flatten", "flatten", "tokens", "mean", "transformer"]))
        if kind == "transformer":
            self.transformer()
        elif kind == "mean":
            self.flatten = len(self.layers)
            keep = self.chance(0.3)
            axes = draw(st.sampled_from([[1, 2], [-1, -2], [2, 1]]))
            self.op("mean", {"axes": axes, **({"keepdim": True} if keep else {})}, name="gap",
                    out=(c, 1, 1) if keep else (c,))
            if keep:  # [C, 1, 1] is still an image: the rank-1 vector starts after this flatten
                self.flatten = len(self.layers)
                self.op("flatten", out=(c,))
        elif kind == "tokens":  # a token-shaped detour: [C, H*W] -> linear -> layernorm -> [C * D]
            self.flatten = len(self.layers)
            self.op("flatten", {"start": self.draw(st.sampled_from([1, -2]))}, name="tokens", out=(c, h * w))
            d = draw(st.integers(1, 16))
            self.op("linear", {"out": self.num(d)}, name="mix", out=(c, d), params=h * w * d + d, macs=c * d * h * w)
            self.layernorm(d)
            self.activation()
            self.op("flatten", out=(c * d,))
        else:
            self.flatten = len(self.layers)
            args = draw(st.sampled_from([{}, {"start": 0}, {"start": 0, "end": -1}, {"start": 0, "end": 2}, {"end": 2}]))
            self.op("flatten", args, out=(c * h * w,))
        for k in range(draw(st.integers(0, 2))):
            f = self.shape[0]
            d = draw(st.integers(2, 32))
            bias = self.chance(0.7)
            self.op("linear", {"out": self.num(d), **({} if bias else {"bias": False})}, name=f"hidden{k}",
                    out=(d,), params=f * d + (d if bias else 0), macs=f * d)
            if self.chance(0.5):
                self.layernorm(d)
            self.activation()
            if self.chance(0.4):
                self.op("dropout", {"p": draw(st.sampled_from([0.1, 0.5]))})
        f, classes = self.shape[0], self.env["num_classes"]
        self.classifier_in = f
        args = {"out": "$num_classes"}
        if self.chance(0.3):
            args["in_features"] = f
        self.op("linear", args, name=draw(st.sampled_from(["fc", "classifier", "head"])), out=(classes,),
                params=f * classes + classes, macs=f * classes)

    def transformer(self) -> None:
        """Tokens from the feature map, a linear embedding, class token and position embedding, then
        pre-norm encoder blocks (a `blocks:` entry with repeat:) and the class token or a token mean."""
        draw = self.draw
        c, h, w = self.shape
        if h * w > 64:
            a, b = draw(st.integers(1, 6)), draw(st.integers(1, 6))
            self.op("adaptive_avgpool2d", {"size": self.pair(a, b)}, out=(c, a, b))
            h, w = a, b
        t = h * w
        self.flatten = len(self.layers)
        if self.chance(0.5):
            self.op("flatten", {"start": 1}, name="tokens", out=(c, t))
        else:
            self.op("reshape", {"shape": draw(st.sampled_from([[c, -1], [c, t], [-1, t]]))}, name="tokens", out=(c, t))
        if self.chance(0.5):
            self.op("transpose", draw(st.sampled_from([{}, {"axes": [0, 1]}, {"axes": [-1, -2]}])), out=(t, c))
        else:
            self.op("permute", {"dims": [1, 0]}, out=(t, c))
        heads = draw(st.integers(1, 4))
        d = heads * draw(st.integers(1, 6))
        self.op("linear", {"out": self.num(d)}, name="embed", out=(t, d), params=c * d + d, macs=t * d * c)
        cls = self.chance(0.6)
        if cls:
            t += 1
            self.op("class_token", name="cls", out=(t, d), params=d)
        if self.chance(0.6):
            self.op("pos_embedding", name="pos", params=t * d)

        block = self.fresh("encoder")
        mlp = draw(st.integers(1, 3))
        attn_bias, drop_path = self.chance(0.7), self.chance(0.4)
        layers: list[Data] = [{"name": "ln1", "op": "layernorm"},
                              {"name": "attn", "op": "self_attention", "heads": "$heads",
                               **({} if attn_bias else {"bias": False}),
                               **({"dropout": 0.1} if self.chance(0.3) else {})}]
        if drop_path:
            layers.append({"name": "dp", "op": "drop_path", "p": 0.1})
        layers += [{"name": "res1", "op": "add", "from": [layers[-1]["name"], "input"]},
                   {"name": "ln2", "op": "layernorm"},
                   {"name": "fc1", "op": "linear", "out": "${in_shape[-1] * mlp}"},
                   {"op": "gelu"},
                   {"name": "fc2", "op": "linear", "out": "${in_shape[-1] // mlp}"},
                   {"name": "res2", "op": "add", "from": ["fc2", "res1"]}]
        self.blocks[block] = {"params": {"heads": {"type": "int"}, "mlp": 2}, "layers": layers}
        n = draw(st.integers(1, 2))
        self.put({"name": "encoder", "op": block, "repeat": n, "heads": self.num(heads), "mlp": mlp}, (t, d), [
            node for j in range(n) for node in (
                (f".{j}.ln1", "layernorm", (t, d), 2 * d, 0),
                (f".{j}.attn", "self_attention", (t, d), 4 * d * d + (4 * d if attn_bias else 0),
                 3 * t * d * d + 2 * t * t * d + t * d * d),
                *([(f".{j}.dp", "drop_path", (t, d), 0, 0)] if drop_path else []),
                (f".{j}.res1", "add", (t, d), 0, 0),
                (f".{j}.ln2", "layernorm", (t, d), 2 * d, 0),
                (f".{j}.fc1", "linear", (t, d * mlp), d * d * mlp + d * mlp, t * d * d * mlp),
                (f".{j}.gelu", "gelu", (t, d * mlp), 0, 0),
                (f".{j}.fc2", "linear", (t, d), d * mlp * d + d, t * d * mlp * d),
                (f".{j}.res2", "add", (t, d), 0, 0))], block=True)
        where: Path = ("blocks", block, "layers")
        names = ["input", *(layer.get("name", "gelu") for layer in layers)]
        for k, layer in enumerate(layers):
            self.infos.append(_LayerInfo((*where, k), layer["op"], False, True, tuple(names[:k + 1]), frozenset()))
        self.scopes[where] = tuple(names)
        self.layernorm(d)
        if cls and self.chance(0.7):
            self.op("select", {"axis": 0, "position": 0} if self.chance(0.5) else {}, name="pick", out=(d,))
        elif self.chance(0.5):
            self.op("select", {"axis": self.draw(st.sampled_from([0, -2])), "position": draw(st.integers(-t, t - 1))},
                    name="pick", out=(d,))
        else:
            self.op("mean", {"axes": self.draw(st.sampled_from([0, -2, [0]]))}, name="pick", out=(d,))

    # -- windows: the ops of shifted-window attention ---------------------------------------------
    def windows(self) -> None:
        """Channels last, a cyclic shift, a strided slice, a gather of channels by a fixed index, a
        product with a learned tensor (matmul), attention over each row with a constant additive bias
        (and sometimes a second, computed one), an elementwise op of Swin V2, and back to [C, H, W]."""
        draw = self.draw
        c, h, w = self.shape
        if h * w > 256:  # keep the attention small
            a, b = draw(st.integers(2, 8)), draw(st.integers(2, 8))
            self.op("adaptive_avgpool2d", {"size": self.pair(a, b)}, out=(c, a, b))
            h, w = a, b
        self.op("permute", {"dims": [1, 2, 0]}, out=(h, w, c))
        self.op("roll", {"shifts": [draw(st.integers(-h, h)), draw(st.integers(-w, w))], "axes": [0, 1]}
                if self.chance(0.7) else {"shifts": draw(st.integers(-3, 3)), "axes": -1})
        start, step = draw(st.integers(0, h - 1)), draw(st.integers(1, 3))
        stop = draw(st.one_of(st.none(), st.integers(start + 1, h)))
        rows = len(range(start, stop if stop is not None else h, step))
        self.op("slice", {"axis": 0, "start": start, "step": step, **({} if stop is None else {"stop": stop})},
                out=(rows, w, c))
        k = draw(st.integers(1, 6))
        index = draw(st.lists(st.integers(0, c - 1), min_size=k, max_size=k))
        picked = self.op("gather", {"axis": -1, "index": index}, name=self.fresh("index"), out=(rows, w, k))
        m = draw(st.integers(1, 6))
        table = self.op("parameter", {"shape": [rows, k, m], "init": draw(st.sampled_from(
            ["zeros", {"trunc_normal": {"std": 0.02}}, {"constant": {"value": 0.5}}]))},
            name=self.fresh("table"), src=picked, out=(rows, k, m), params=rows * k * m)
        product = self.op("matmul", name=self.fresh("product"), src=[picked, table], out=(rows, w, m),
                          macs=rows * w * k * m)
        bias = self.op("constant", {"shape": [1, w, w], "values": f"${{[[[(i - j) / {w} for j in range({w})] for i in "
                                                                    f"range({w})]]}}"},
                       name=self.fresh("bias"), src=product, out=(1, w, w))
        inputs = [product, product, product, bias]
        if self.chance(0.4):  # a second bias, computed in the graph: -100 where two positions differ (Swin's mask)
            ids = self.op("constant", {"shape": [1, w], "values": [[j % 2 for j in range(w)]]}, src=product,
                          name=self.fresh("ids"), out=(1, w))
            row = self.op("reshape", {"shape": [1, 1, w]}, src=ids, out=(1, 1, w))
            col = self.op("reshape", {"shape": [1, w, 1]}, src=ids, out=(1, w, 1))
            self.op("sub", src=[row, col], out=(1, w, w))
            self.op("abs")
            self.op("clamp", {"max": 1.0})
            inputs.append(self.op("scale", {"factor": -100.0}, name=self.fresh("mask")))
        args: Data = {}
        if self.chance(0.3):
            args["scale"] = draw(st.sampled_from([0.5, 1.0]))
        self.op("attention", args, name=self.fresh("attention"), src=inputs, out=(rows, w, m),
                macs=2 * rows * w * w * m)
        kind = draw(st.sampled_from(["normalize", "exp", "clamp", "none"]))
        if kind == "normalize":
            self.op("normalize", {"axis": draw(st.sampled_from([-1, 0]))})
        elif kind == "exp":
            self.op("exp")
        elif kind == "clamp":
            self.op("clamp", {"min": -0.5, "max": 0.5})
        self.op("permute", {"dims": [2, 0, 1]}, out=(m, rows, w))

    def layernorm(self, d: int) -> None:
        args: Data = {}
        if self.chance(0.3):
            args["eps"] = self.draw(st.sampled_from([1e-6, 1e-5]))
        affine, bias = not self.chance(0.2), not self.chance(0.2)
        if not affine:
            args["affine"] = False
        if not bias:
            args["bias"] = False
        self.op("layernorm", args, params=(d * (2 if bias else 1)) if affine else 0)


STAGES = ("plain", "plain", "misc", "residual_inline", "concat", "squeeze_excite", "repeated", "switched_off",
          "residual_stage", "decoder", "windows")


@st.composite
def _cases(draw: Callable[[st.SearchStrategy[Any]], Any], max_stages: int = 5, stages: Sequence[str] = STAGES) -> _Case:
    c, h, w = draw(st.integers(1, 8)), draw(st.integers(8, 40)), draw(st.integers(8, 40))
    env = {"num_classes": draw(st.integers(1, 10)), "base": draw(st.integers(2, 8))}
    params: Data = {"num_classes": env["num_classes"], "base": {"type": "int", "default": env["base"], "min": 1}}
    spec_vars: Data = {}
    if draw(st.booleans()):
        spec_vars["wide"] = "${base * 2}"
        env["wide"] = env["base"] * 2
    if h == w and draw(st.booleans()):
        params["resolution"] = h
        env["resolution"] = h
        shape: list[Any] = [c, "$resolution", "$resolution"]
    else:
        shape = [c, h, w]
    writer = _Writer(draw, (c, h, w), env)
    for stage in draw(st.lists(st.sampled_from(stages), min_size=1, max_size=max_stages)):
        getattr(writer, stage)()
    writer.head()
    writer.scopes[("layers",)] = tuple(writer.names)

    data: Data = {"archspec": 1, "name": f"net{draw(st.integers(0, 999))}",
                  "description": "A network drawn by archspec.testing.strategies.valid_specs.", "params": params}
    if spec_vars:
        data["vars"] = spec_vars
    data["input"] = shape
    if writer.blocks:
        data["blocks"] = writer.blocks
    data["layers"] = writer.layers
    facts = SpecFacts((c, h, w), writer.shape, writer.params, writer.macs, dict(writer.shapes), dict(writer.ops))
    if draw(st.integers(0, 3)) == 0:
        data["expect"] = {"params": facts.params, "macs": facts.macs, "input": [c, h, w], "output": list(facts.output)}
    return _Case(data, facts, tuple(writer.infos), dict(writer.scopes), env, writer.flatten, writer.classifier_in)


def valid_specs(max_stages: int = 5, stages: Sequence[str] = STAGES) -> st.SearchStrategy[tuple[str, SpecFacts]]:
    """(YAML text, SpecFacts) of random valid full specs; see the module docstring for what they hold.
    `stages` narrows the kinds of stage drawn (names in `STAGES`), e.g. ("misc",) for the single-layer ops."""
    return _cases(max_stages, tuple(stages)).map(lambda case: (dump(case.data), case.facts))


# -- invalid specs ------------------------------------------------------------------------------------
def _token(k: int) -> str:
    return f"ZZQ{k}ZZ"


def _render(data: Data, subs: Mapping[str, str]) -> tuple[str, dict[str, int]]:
    """Dump `data`, then replace each sentinel with raw YAML text; return the text and their lines."""
    text = dump(data)
    lines: dict[str, int] = {}
    for token in subs:
        assert text.count(token) == 1, (token, text)
        lines[token] = text.count("\n", 0, text.index(token)) + 1
    for token, raw in subs.items():
        text = text.replace(token, raw)
    return text, lines


def _at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def _registry_names() -> tuple[frozenset[str], Mapping[str, tuple[str, ...]]]:
    registry = default_registry()
    return frozenset(registry.ops), {name: tuple(registry.op(name).params.model_fields) for name in registry.ops}


def _typos(draw: Callable[[st.SearchStrategy[Any]], Any], word: str, avoid: Iterable[str]) -> str | None:
    """A near miss of `word` (one edit) that is none of `avoid`; None if every draw hits one."""
    taken = set(avoid)
    for _ in range(4):
        kind = draw(st.sampled_from(["drop", "swap", "double", "case", "suffix", "replace"]))
        k = draw(st.integers(0, max(0, len(word) - 1)))
        if kind == "drop" and len(word) > 1:
            typo = word[:k] + word[k + 1:]
        elif kind == "swap" and len(word) > 1:
            k = min(k, len(word) - 2)
            typo = word[:k] + word[k + 1] + word[k] + word[k + 2:]
        elif kind == "double":
            typo = word[:k] + word[k] + word[k:]
        elif kind == "case":
            typo = word[:k] + word[k].swapcase() + word[k + 1:]
        elif kind == "replace":
            typo = word[:k] + draw(st.sampled_from("aeiouxz")) + word[k + 1:]
        else:
            typo = word + draw(st.sampled_from(["s", "_", "2", "x"]))
        if typo and typo not in taken and typo[0].isalpha() and typo.isidentifier() and typo.lower() not in (
                "true", "false", "null", *(b.lower() for b in _FAKE_BOOLS)):
            return typo
    return None


# Wrong values for op arguments: every one must be rejected (AS403) when the layer is lowered.
WRONG_VALUES: Mapping[str, Mapping[str, Sequence[Any]]] = {
    "conv2d": {"out": [2.5, "8", True, [8], 0, -4], "kernel": [2.5, "3", True, [3, 3, 3], [3]],
               "stride": [1.5, "2", True], "padding": ["full", 1.5, True], "dilation": [True, 1.5],
               "groups": [0, 1.5, True], "bias": [1, 0, "true", None], "in_channels": [2.5, "3"]},
    "batchnorm": {"eps": [0, -1e-5, "small", True], "momentum": ["fast", True], "affine": [1, "yes"]},
    "layernorm": {"eps": [0, "tiny"], "affine": [1], "bias": [0, "no"], "axis": [0.5, "0"]},
    "layer_scale": {"init": ["small", True], "axis": [0.5, "0", True]},
    "pad": {"widths": ["x", 1, [[1]], [[-1, 0], [0, 0], [0, 0]], [[0.5, 0], [0, 0], [0, 0]]], "value": ["zero", True]},
    "linear": {"out": [0, -1, 2.5, "10", True], "bias": [1, "no"], "in_features": ["x", 1.5]},
    "maxpool2d": {"kernel": [2.5, "2", True], "stride": [1.5, "2"], "padding": [0.5, "1"], "ceil_mode": [1, "true"],
                  "dilation": [1.5, True]},
    "avgpool2d": {"kernel": [2.5, "2", True], "stride": [1.5, "2"], "padding": [0.5, "1"], "ceil_mode": [1, "true"],
                  "count_include_pad": [0, "false"]},
    "adaptive_avgpool2d": {"size": [1.5, "1", True, [1, 2, 3]]},
    "dropout": {"p": [1.5, -0.1, "half", True]},
    "gelu": {"approximate": ["fast", True, 1]},
    "flatten": {"start": [0.5, "0", True], "end": [1.5, "-1"]},
    "concat": {"axis": [0.5, "0", True]},
    "self_attention": {"heads": [0, 1.5, "2"], "dropout": [2.0, "none"], "bias": [1]},
    "select": {"axis": ["0", 1.5], "position": [1.5, "first"]},
    "mean": {"axes": ["0", 1.5, [0.5]], "keepdim": [1]},
    "transpose": {"axes": [[0], 0, [0, 1, 2]]},
    "permute": {"dims": [1, "10", [0.5, 1]]},
    "reshape": {"shape": ["x", 5.5, [2.5]]},
    "lrn": {"size": [0, 1.5], "alpha": ["x"], "beta": [True]},
    "softmax": {"axis": [0.5, "last"]},
    "drop_path": {"p": [2, -0.5, "x"]},
    "adaptive_maxpool2d": {"size": [1.5, "1", True]},
}
# Degenerate sizes torch rejects: zero or negative kernels, strides, dilations, paddings, sizes.
DEGENERATE_VALUES: Mapping[str, Mapping[str, Sequence[Any]]] = {
    "conv2d": {"kernel": [0, -1, [3, 0]], "stride": [0, -1, [1, 0]], "dilation": [0, -1], "padding": [-1, [0, -2]]},
    "maxpool2d": {"kernel": [0, -2], "stride": [0, -1], "padding": [-1], "dilation": [0]},
    "avgpool2d": {"kernel": [0, -2], "stride": [0, -1], "padding": [-1]},
    "adaptive_avgpool2d": {"size": [0, -1, [1, 0]]},
}
WRONG_BLOCK_VALUES: Mapping[str, Sequence[Any]] = {"width": [2.5, "wide", True, [8]], "stride": [1.5, "2", False],
                                                   "downsample": [1, "yes", 0], "heads": [1.5, "two", [2]],
                                                   "mlp": [0.5, "x", True]}


@dataclass
class _Mutator:
    draw: Callable[[st.SearchStrategy[Any]], Any]
    case: _Case

    def __post_init__(self) -> None:
        self.data = copy.deepcopy(self.case.data)
        self.ops, self.args = _registry_names()

    # -- helpers -------------------------------------------------------------------------------------
    def layer(self, where: Callable[[_LayerInfo], bool] = lambda info: True) -> _LayerInfo | None:
        options = [info for info in self.case.layers if where(info)]
        return self.draw(st.sampled_from(options)) if options else None

    def text(self, subs: Mapping[str, str], codes: Iterable[str], mutation: str, line_of: str | None = None) -> InvalidSpec:
        text, lines = _render(self.data, subs)
        return InvalidSpec(text, frozenset(codes), mutation, lines[line_of] if line_of else None)

    def put_value(self, path: Path, raw: str, codes: Iterable[str], mutation: str) -> InvalidSpec:
        """Set the value at `path` (a mapping entry, created if missing) to raw YAML text."""
        _at(self.data, path[:-1])[path[-1]] = _token(0)
        return self.text({_token(0): raw}, codes, mutation, _token(0))

    def known_names(self) -> set[str]:
        names = set(self.case.env) | {"i", "j", "in_channels", "in_shape", "width", "stride", "downsample", "project",
                                       "heads", "mlp"}
        return names | set(FUNCTIONS) | {"true", "false", "True", "False", "None"}

    # -- mutations: each returns an InvalidSpec ------------------------------------------------------
    def near_miss_op(self) -> InvalidSpec | None:
        info = self.layer(lambda i: not i.block)
        assert info is not None
        typo = _typos(self.draw, info.op, self.ops | set(self.data.get("blocks", {})))
        if typo is None:
            return None
        return self.put_value((*info.path, "op"), json.dumps(typo), {"AS204"}, f"op {info.op!r} -> {typo!r}")

    def bad_arg_name(self) -> InvalidSpec | None:
        info = self.layer()
        assert info is not None
        layer = _at(self.data, info.path)
        allowed = list(self.data["blocks"][info.op]["params"]) if info.block else list(self.args[info.op])
        word = self.draw(st.sampled_from(allowed + ["kernel", "stride", "channels", "inplace", "padding_mode"]))
        name = _typos(self.draw, word, [*allowed, *LAYER_KEYS, "args"])
        if name is None:
            return None
        layer[_token(0)] = 1
        return self.text({_token(0): name}, {"AS403"}, f"{info.op} argument {name!r}", _token(0))

    def _wrong_value(self, table: Mapping[str, Mapping[str, Sequence[Any]]], label: str, codes: Iterable[str]) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live and not i.block and i.op in table)
        if info is None:
            return None
        key = self.draw(st.sampled_from(sorted(table[info.op])))
        value = self.draw(st.sampled_from(table[info.op][key]))
        return self.put_value((*info.path, key), json.dumps(value), codes, f"{label}: {info.op} {key}: {value!r}")

    def wrong_arg_type(self) -> InvalidSpec | None:
        if self.draw(st.booleans()):
            info = self.layer(lambda i: i.live and i.block)
            if info is not None:
                declared = self.data["blocks"][info.op]["params"]
                key = self.draw(st.sampled_from([k for k in WRONG_BLOCK_VALUES if k in declared]))
                value = self.draw(st.sampled_from(WRONG_BLOCK_VALUES[key]))
                return self.put_value((*info.path, key), json.dumps(value), {"AS208"}, f"block {info.op} {key}: {value!r}")
        return self._wrong_value(WRONG_VALUES, "wrong value", {"AS403"})

    def degenerate_arg(self) -> InvalidSpec | None:
        return self._wrong_value(DEGENERATE_VALUES, "degenerate size", {"AS403", "AS501"})

    def bad_repeat(self) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live)
        assert info is not None
        value = self.draw(st.sampled_from([-1, -3, 1.5, "${-1}", "${3 / 2}", "${2.0}", "two", {"times": -2},
                                           {"times": "${0.5}"}, {"times": 1.5}, "${base - 100}"]))
        return self.put_value((*info.path, "repeat"), json.dumps(value), {"AS203", "AS404"}, f"repeat: {value!r}")

    def bad_from(self) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live)
        assert info is not None
        scope = self.case.scopes[info.path[:-1]]
        later = [n for n in scope if n not in info.before]
        options = ["typo", "dotted", "Input"] + (["later"] * 2 if later else [])
        kind = self.draw(st.sampled_from(options))
        if kind == "later":
            bad: str | None = self.draw(st.sampled_from(later))
        elif kind == "dotted":
            inner = [n for n in self.case.facts.shapes if "." in n]
            bad = self.draw(st.sampled_from(inner)) if inner else "stage.conv1"
        elif kind == "Input":
            bad = "Input"
        else:
            bad = _typos(self.draw, self.draw(st.sampled_from(info.before)), scope)
        if bad is None:
            return None
        value: Any = bad if self.draw(st.booleans()) else [self.draw(st.sampled_from(info.before)), bad]
        # two inputs on a layer with an if: is also AS431 (which input passes when it is skipped), reported first
        codes = {"AS401", "AS431"} if isinstance(value, list) else {"AS401"}
        if info.path[0] == "blocks" and "inputs" in self.data["blocks"][info.path[1]]:
            codes.add("AS442")  # the input this from: read may be read nowhere else now (found in validation, first)
        return self.put_value((*info.path, "from"), json.dumps(value), codes, f"from: {value!r}")

    def shape_mismatch(self) -> InvalidSpec:
        c, h, w = self.case.facts.input
        layers: list[Any] = self.data["layers"]
        encoder = next((k for k, layer in enumerate(layers) if layer.get("name") == "encoder"), None)
        pick = next((k for k, layer in enumerate(layers) if layer.get("name") == "pick" and layer["op"] == "select"), None)
        kind = self.draw(st.sampled_from(["groups", "kernel", "dilated", "in_channels", "same_stride", "pool_padding",
                                          "pool_kernel", "add", "concat", "rank", "flatten_axes", "in_features",
                                          "attention_rank"] + ["heads"] * (encoder is not None)
                                         + ["position"] * (pick is not None)))
        bad: Data = {"name": _token(0)}
        at = 0
        if kind == "heads":  # more heads than the width: they cannot divide it
            assert encoder is not None
            width = self.case.facts.shapes["encoder.0.attn"][-1]
            layers[encoder]["heads"] = width + self.draw(st.integers(1, 3))
            return self.text({}, {"AS501"}, f"heads > width {width}")
        if kind == "position":  # a position past the end of the token axis
            assert pick is not None
            tokens = self.case.facts.shapes["encoder.0.ln1"][0]
            layers[pick].update(axis=0, position=self.draw(st.sampled_from([tokens, tokens + 3, -tokens - 1])))
            name = layers[pick]["name"]
            layers[pick]["name"] = _token(0)
            return self.text({_token(0): json.dumps(name)}, {"AS501"}, f"select past {tokens} tokens", _token(0))
        if kind == "groups":
            bad.update(op="conv2d", out=c + 1, kernel=1, groups=c + 1)
        elif kind == "kernel":
            bad.update(op="conv2d", out=4, kernel=[h + 1, 1] if self.draw(st.booleans()) else max(h, w) + 1)
        elif kind == "dilated":
            bad.update(op="conv2d", out=4, kernel=3, dilation=max(h, w))
        elif kind == "in_channels":
            bad.update(op="conv2d", out=4, kernel=1, in_channels=c + self.draw(st.integers(1, 3)))
        elif kind == "same_stride":
            bad.update(op="conv2d", out=4, kernel=3, padding="same", stride=2)
        elif kind == "pool_padding":
            bad.update(op=self.draw(st.sampled_from(["maxpool2d", "avgpool2d"])), kernel=2, padding=2)
        elif kind == "pool_kernel":
            bad.update(op="avgpool2d", kernel=max(h, w) + 1)
        elif kind in ("add", "concat"):
            layers.insert(0, {"name": "halved", "op": "maxpool2d", "kernel": 2, "from": "input"})
            at = 1
            bad.update(op=kind, **{"from": ["input", "halved"] if self.draw(st.booleans()) else ["halved", "input"]})
        elif kind == "rank":
            at = self.case.flatten + 1  # after the flatten: a [F] vector
            bad.update(op=self.draw(st.sampled_from(["conv2d", "maxpool2d", "adaptive_avgpool2d"])))
            bad.update({"conv2d": {"out": 4, "kernel": 1}, "maxpool2d": {"kernel": 1},
                        "adaptive_avgpool2d": {"size": 1}}[bad["op"]])
        elif kind == "flatten_axes":
            bad.update(op="flatten", start=2, end=1)
        elif kind == "attention_rank":
            bad.update(op="self_attention", heads=1)  # wants [T, D]; the input is [C, H, W]
        else:  # the classifier states the wrong number of input features
            last = layers[-1]
            f = self.case.classifier_in
            last["in_features"] = f + self.draw(st.integers(1, 5))
            name = last["name"]
            last["name"] = _token(0)
            return self.text({_token(0): json.dumps(name)}, {"AS501"}, f"linear in_features != {f}", _token(0))
        layers.insert(at, bad)
        return self.text({_token(0): "bad"}, {"AS501"}, f"shape mismatch: {kind}", _token(0))

    def broken_yaml(self) -> InvalidSpec:
        info = self.layer()
        assert info is not None
        raw = self.draw(st.sampled_from(["[1, 2", "{a: 1", "'abc", '"abc', "@at", "`tick", "%percent", "\x07",
                                         "a: b: c", "[1, 2]]", "!"]))
        _at(self.data, info.path)["name"] = _token(0)
        text, _ = _render(self.data, {_token(0): raw})
        if _parses(text):  # the breakage was harmless in this context: break the end of the file instead
            text += "broken: [1, 2\n"
        return InvalidSpec(text, frozenset({"AS102", "AS109"}), f"broken YAML {raw!r}")

    def duplicate_key(self) -> InvalidSpec:
        places: list[Path] = [(), ("params",), *(info.path for info in self.case.layers)]
        place = self.draw(st.sampled_from(places))
        mapping = _at(self.data, place)
        key = self.draw(st.sampled_from(list(mapping)))
        mapping[_token(0)] = self.draw(st.sampled_from([1, "relu", "x"]))
        return self.text({_token(0): key}, {"AS104"}, f"duplicate key {key!r}", _token(0))

    def alias(self) -> InvalidSpec:
        info = self.layer(lambda i: i.live and not i.block)
        assert info is not None
        layer = _at(self.data, info.path)
        if self.draw(st.booleans()):
            layer[_token(0)] = {"op": info.op}
            return self.text({_token(0): "<<"}, {"AS103"}, "merge key <<", _token(0))
        layer["out" if info.op in ("conv2d", "linear") else "extra"] = _token(0)
        self.data["params"]["num_classes"] = _token(1)
        subs = {_token(0): "*n", _token(1): f"&n {self.case.env['num_classes']}"}
        return self.text(subs, {"AS103"}, "anchor &n, alias *n", _token(0))

    def yes_bool(self) -> InvalidSpec:
        word = self.draw(st.sampled_from(_FAKE_BOOLS))
        places: list[Path] = [("description",)]
        for info in self.case.layers:
            layer = _at(self.data, info.path)
            places += [(*info.path, k) for k in ("bias", "ceil_mode", "affine", "count_include_pad") if k in layer]
            if "if" in layer and isinstance(layer["if"], bool):
                places.append((*info.path, "if"))
        for name, block in self.data.get("blocks", {}).items():
            if "downsample" in block["params"]:
                places.append(("blocks", name, "params", "downsample"))
        place = self.draw(st.sampled_from(places))
        return self.put_value(place, word, {"AS106"}, f"{'.'.join(map(str, place))}: {word}")

    def _expression(self, expressions: Sequence[str], codes: Iterable[str], label: str) -> InvalidSpec:
        where = self.draw(st.sampled_from(["layer", "layer", "vars", "input"]))
        expr = self.draw(st.sampled_from(expressions))
        if where == "vars":
            self.data.setdefault("vars", {})["broken"] = _token(0)
        elif where == "input":
            self.data["input"][0] = _token(0)
            expr = expr if "in_channels" not in expr and "in_shape" not in expr else "${base.real}"
        else:
            info = self.layer(lambda i: i.live and not i.block and i.op in ("conv2d", "linear", "dropout", "batchnorm"))
            assert info is not None
            key = {"conv2d": "out", "linear": "out", "dropout": "p", "batchnorm": "eps"}[info.op]
            _at(self.data, info.path)[key] = _token(0)
        return self.text({_token(0): json.dumps(expr)}, codes, f"{label}: {expr}", _token(0))

    def attribute_access(self) -> InvalidSpec:
        return self._expression(["${in_channels.real}", "${base.bit_length()}", "${(1).__class__}", "${in_shape.count(1)}",
                                 "${num_classes.numerator * 1}", "${[1, 2].index(1)}", "${(lambda: 3)()}",
                                 "${sum(x for x in range(3))}", "${[x.real for x in range(3)][0]}", "${{x for x in range(3)}}",
                                 "${base if (y := 2) else 1}"], {"AS302"},
                                "forbidden construct")

    def unknown_variable(self) -> InvalidSpec:
        known = self.known_names()
        typo = _typos(self.draw, self.draw(st.sampled_from(sorted(self.case.env))), known) or "undefined_thing"
        fn = _typos(self.draw, self.draw(st.sampled_from(["floor", "ceil", "make_divisible", "max"])), known) or "floorr"
        exprs = [f"${{{typo} * 2}}", "${in_channel + 1}", f"${{{fn}(3.5)}}", "${undefined_thing}", "${__import__('os')}"]
        return self._expression(exprs, {"AS303"}, "unknown name")

    def bad_expression(self) -> InvalidSpec:
        if self.draw(st.booleans()):
            return self._expression(["${1 +}", "${(}", "${base +* 2}", "${}", "${base base}", "${[1, 2}"], {"AS301"},
                                    "syntax")
        return self._expression(["${base // 0}", "${1 % 0}", "${[1, 2][5]}", "${'a' + 1}", "${max([])}", "${sqrt(-1)}"],
                                {"AS304"}, "failing")

    def missing_key(self) -> InvalidSpec:
        kind = self.draw(st.sampled_from(["top", "op", "arg", "block_arg", "block_layers"]))
        if kind == "top":
            key = self.draw(st.sampled_from(["input", "layers", "name", "archspec"]))
            del self.data[key]
            return self.text({}, {"AS201", "AS207"}, f"no {key}:")
        if kind == "block_layers" and self.data.get("blocks"):
            name = self.draw(st.sampled_from(sorted(self.data["blocks"])))
            del self.data["blocks"][name]["layers"]
            return self.text({}, {"AS201"}, f"block {name} has no layers:")
        if kind == "block_arg":
            info = self.layer(lambda i: i.live and i.block)
            if info is not None:
                layer = _at(self.data, info.path)
                declared = self.data["blocks"][info.op]["params"]
                key = self.draw(st.sampled_from([k for k, v in declared.items() if isinstance(v, dict) and "default" not in v]))
                del layer[key]
                return self._named(layer, {"AS201"}, f"block {info.op} without {key}")
        if kind == "arg":
            required = {"conv2d": ("out", "kernel"), "linear": ("out",), "maxpool2d": ("kernel",),
                        "avgpool2d": ("kernel",), "adaptive_avgpool2d": ("size",)}
            info = self.layer(lambda i: i.live and i.op in required and i.path[0] == "layers")
            if info is not None:
                layer = _at(self.data, info.path)
                key = self.draw(st.sampled_from(required[info.op]))
                del layer[key]
                return self._named(layer, {"AS403"}, f"{info.op} without {key}")
        info = self.layer(lambda i: i.path[0] == "layers")
        assert info is not None
        layer = _at(self.data, info.path)
        del layer["op"]
        return self._named(layer, {"AS201"}, "layer without op:")

    def _named(self, layer: Data, codes: Iterable[str], mutation: str) -> InvalidSpec:
        """A mutation located at `layer`: when the layer has a name, its first key, the line is known."""
        if "name" in layer and next(iter(layer)) == "name":
            name = layer["name"]
            layer["name"] = _token(0)
            return self.text({_token(0): json.dumps(name)}, codes, mutation, _token(0))
        return self.text({}, codes, mutation)

    def bad_if(self) -> InvalidSpec:
        # not a merge: a merge with if: must also say which input passes on (else:), another error (AS431)
        info = self.layer(lambda i: i.path[0] == "layers" and not isinstance(_at(self.data, i.path).get("from"), list))
        assert info is not None
        value = self.draw(st.sampled_from(["${1}", "${base}", "yes please", "${[True]}", "${None}"]))
        return self.put_value((*info.path, "if"), json.dumps(value), {"AS408"}, f"if: {value!r}")

    def bad_layer_name(self) -> InvalidSpec:
        info = self.layer(lambda i: i.live)
        assert info is not None
        name = self.draw(st.sampled_from(["1conv", "conv-1", "conv.", "class", "_private", "conv 1", "", "lambda", "x.01"]))
        return self.put_value((*info.path, "name"), json.dumps(name), {"AS409"}, f"name: {name!r}")

    def duplicate_layer_name(self) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live and len(i.before) > 1)
        if info is None:
            return None
        taken = [n for n in info.before if n not in info.skipped_before]
        name = self.draw(st.sampled_from(taken))
        # in a block with inputs:, a layer named like an input is AS441 (validation, before lowering's AS407)
        return self.put_value((*info.path, "name"), json.dumps(name), {"AS407", "AS441"}, f"second layer named {name!r}")

    def unknown_key(self) -> InvalidSpec:
        place = self.draw(st.sampled_from(["top", "param", "block"]))
        if place == "block" and self.data.get("blocks"):
            mapping = self.data["blocks"][self.draw(st.sampled_from(sorted(self.data["blocks"])))]
            key = self.draw(st.sampled_from(["layer", "param", "outputs", "var"]))
        elif place == "param":
            mapping = self.data["params"]["base"]
            key = self.draw(st.sampled_from(["defualt", "typ", "minimum", "docs"]))
        else:
            mapping = self.data
            key = self.draw(st.sampled_from(["layer", "param", "varz", "expected", "inputs", "block", "Name"]))
        mapping[_token(0)] = 1
        return self.text({_token(0): key}, {"AS202"}, f"unknown key {key!r}", _token(0))

    def wrong_expect(self) -> InvalidSpec:
        facts = self.case.facts
        key, code, value = self.draw(st.sampled_from([
            ("params", "AS601", facts.params + 1), ("macs", "AS602", facts.macs + 7),
            ("output", "AS603", [*facts.output, 1]), ("input", "AS604", [facts.input[0] + 1, *facts.input[1:]]),
        ]))
        self.data.setdefault("expect", {})[key] = _token(0)
        return self.text({_token(0): json.dumps(value)}, {code}, f"expect: {key}: {value}", _token(0))

    def block_cycle(self) -> InvalidSpec | None:
        blocks = self.data.get("blocks")
        if not blocks:
            return None
        name = self.draw(st.sampled_from(sorted(blocks)))
        blocks[name]["layers"].insert(self.draw(st.integers(0, 2)), {"op": name, "width": 4})
        return self.text({}, {"AS406"}, f"block {name} uses itself")

    def bad_scalar(self) -> InvalidSpec:
        info = self.layer(lambda i: i.op in ("conv2d", "linear", "dropout", "batchnorm") and not i.block)
        assert info is not None
        key = {"conv2d": "out", "linear": "out", "dropout": "p", "batchnorm": "eps"}[info.op]
        raw, code = self.draw(st.sampled_from([(".nan", "AS105"), (".inf", "AS105"), ("-.Inf", "AS105"), (".NaN", "AS105"),
                                               ("!!str 3", "AS109"), ("!!python/object:os.system x", "AS109"),
                                               ("!custom 1", "AS109"), ("!!int 3", "AS109")]))
        return self.put_value((*info.path, key), raw, {code}, f"{key}: {raw}")

    def bad_structure(self) -> InvalidSpec:
        kind = self.draw(st.sampled_from(["version", "param_default", "reserved_param", "block_named_op", "layer_string",
                                          "empty_layers", "output", "arity"]))
        if kind == "version":
            return self.put_value(("archspec",), json.dumps(self.draw(st.sampled_from([2, 0, "1", 1.5]))), {"AS207"}, "version")
        if kind == "param_default":
            self.data["params"]["extra"] = {"type": "int", "default": _token(0)}
            value = self.draw(st.sampled_from([2.5, "x", True, [1]]))
            return self.text({_token(0): json.dumps(value)}, {"AS208"}, f"int default {value!r}", _token(0))
        if kind == "reserved_param":
            self.data["params"][_token(0)] = 1
            name = self.draw(st.sampled_from(["if", "from", "repeat", "_hidden", "name"]))
            return self.text({_token(0): name}, {"AS203"}, f"parameter named {name!r}", _token(0))
        if kind == "block_named_op":
            self.data.setdefault("blocks", {})[_token(0)] = {"layers": [{"op": "relu"}]}
            name = self.draw(st.sampled_from(["relu", "conv2d", "linear"]))
            return self.text({_token(0): name}, {"AS203"}, f"block named {name!r}", _token(0))
        if kind == "layer_string":
            self.data["layers"].insert(self.draw(st.integers(0, len(self.data["layers"]))), _token(0))
            return self.text({_token(0): self.draw(st.sampled_from(["relu", "3", "[relu]"]))}, {"AS203"}, "a layer that is no mapping", _token(0))
        if kind == "empty_layers":
            self.data["layers"] = []
            return self.text({}, {"AS201", "AS203", "AS410"}, "no layers")
        if kind == "output":
            self.data["output"] = _token(0)
            name = _typos(self.draw, self.data["layers"][-1].get("name", "fc"), self.case.scopes[("layers",)]) or "nowhere"
            return self.text({_token(0): json.dumps(name)}, {"AS401"}, f"output: {name}", _token(0))
        # arity: an add with one input, or a linear with two
        bad = self.draw(st.sampled_from([{"op": "add"}, {"op": "mul", "from": ["input"]},
                                         {"op": "linear", "out": 3, "from": ["input", "input"]}]))
        self.data["layers"].insert(0, {"name": _token(0), **bad})
        return self.text({_token(0): "bad"}, {"AS402"}, f"arity: {bad}", _token(0))


def _parses(text: str) -> bool:
    try:
        list(yaml.parse(text))
    except yaml.YAMLError:
        return False
    return True


MUTATIONS: tuple[str, ...] = (
    "near_miss_op", "bad_arg_name", "wrong_arg_type", "degenerate_arg", "bad_repeat", "bad_from", "shape_mismatch",
    "broken_yaml", "duplicate_key", "alias", "yes_bool", "attribute_access", "unknown_variable", "bad_expression",
    "missing_key", "bad_if", "bad_layer_name", "duplicate_layer_name", "unknown_key", "wrong_expect", "block_cycle",
    "bad_scalar", "bad_structure",
)


@st.composite
def _invalid(draw: Callable[[st.SearchStrategy[Any]], Any], kinds: Sequence[str], max_stages: int) -> InvalidSpec:
    case = draw(_cases(max_stages))
    while True:
        kind = draw(st.sampled_from(kinds))
        result = getattr(_Mutator(draw, case), kind)()
        if result is not None:
            return result
        kinds = [k for k in kinds if k != kind] or ["wrong_expect"]


def invalid_specs(kinds: Sequence[str] | None = None, max_stages: int = 4) -> st.SearchStrategy[InvalidSpec]:
    """Random invalid spec texts: `InvalidSpec(text, codes, mutation, line)`. Compiling the text must
    raise SpecErrors with at least one error whose code is in `codes` (and, when `line` is not None,
    one such error on that line). `kinds` picks mutations from MUTATIONS (default: all)."""
    chosen = list(kinds if kinds is not None else MUTATIONS)
    unknown = [k for k in chosen if k not in MUTATIONS]
    if unknown or not chosen:
        raise ValueError(f"unknown mutation kinds {unknown}; choose from {MUTATIONS}")
    return _invalid(chosen, max_stages)

