"""The valid-spec writer's base: bookkeeping of names, shapes and counts, and single layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from archspec.testing.strategies.facts import (
    ACTIVATIONS,
    MAX_CHANNELS,
    TRICKY_NAMES,
    Data,
    LayerInfo,
    Node,
    Path,
    Shape,
    conv_output,
    divisors,
    pool_output,
)


class LayerWriter:
    """Draws the spec's layer list while computing the IR nodes each layer must produce: the bookkeeping,
    and one method per kind of single layer (the stages that combine them are in `stages`)."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], shape: Shape, env: dict[str, int]):
        self.draw = draw
        self.env = env
        self.layers: list[Data] = []
        self.blocks: Data = {}
        self.infos: list[LayerInfo] = []
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

    def put(
        self,
        layer: Data,
        out: Shape,
        nodes: Sequence[Node],
        *,
        live: bool = True,
        skip: bool = False,
        block: bool = False,
    ) -> str:
        local = layer.get("name") or self._auto_name(layer["op"])
        self.infos.append(
            LayerInfo(
                ("layers", len(self.layers)),
                layer["op"],
                block,
                live and not skip,
                tuple(self.names),
                frozenset(self.skipped),
            )
        )
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

    def op(
        self,
        op: str,
        args: Data | None = None,
        *,
        name: str | None = None,
        src: str | list[str] | None = None,
        out: Shape | None = None,
        params: int = 0,
        macs: int = 0,
    ) -> str:
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
        groups = draw(st.sampled_from(divisors(c))) if self.chance(0.3) else 1
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
        return self.op(
            "conv2d",
            args,
            name=name,
            src=src,
            out=(out, oh, ow),
            params=out * per_out + (out if bias else 0),
            macs=out * oh * ow * per_out,
        )

    def conv_keep(self, out: int, name: str, src: str | None = None) -> str:
        """A stride-1 convolution that keeps H and W (odd kernel, symmetric or `same` padding)."""
        c, h, w = self.names[src] if src is not None else self.shape
        k = self.draw(st.sampled_from([1, 3, 5]))
        args: Data = {"out": self.num(out), "kernel": k, "padding": "same" if self.chance(0.4) else (k - 1) // 2}
        bias = self.chance(0.5)
        if not bias:
            args["bias"] = False
        return self.op(
            "conv2d",
            args,
            name=name,
            src=src,
            out=(out, h, w),
            params=out * c * k * k + (out if bias else 0),
            macs=out * h * w * c * k * k,
        )

    # -- pooling -------------------------------------------------------------------------------------
    def pool(self, name: str | None = None) -> str:
        c, h, w = self.shape
        draw = self.draw
        op = draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
        ceil_mode = self.chance(0.3)
        stride = draw(st.sampled_from([None, 1, 2, 3]))
        dilation = draw(st.integers(1, 2)) if op == "maxpool2d" and self.chance(0.2) else 1
        options = [
            (k, p)
            for k in range(1, 4)
            for p in range(0, k // 2 + 1)
            if min(pool_output(n, k, stride or k, p, dilation, ceil_mode) for n in (h, w)) >= 1
        ]
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
        out = (
            c,
            pool_output(h, kernel, s, padding, dilation, ceil_mode),
            pool_output(w, kernel, s, padding, dilation, ceil_mode),
        )
        return self.op(op, args, name=name, out=out)

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
