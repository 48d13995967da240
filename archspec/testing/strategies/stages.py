"""The stages a valid spec is drawn from: each method appends a run of layers (a residual block, a
concat, a transformer, a U-Net decoder level, ...) and the IR nodes they must produce."""

from __future__ import annotations

from hypothesis import strategies as st

from archspec.testing.strategies.facts import (
    ACTIVATIONS,
    MAX_CHANNELS,
    Data,
    LayerInfo,
    Node,
    Path,
    conv_output,
    conv_transpose_output,
    divisors,
)
from archspec.testing.strategies.writer import LayerWriter


class StageWriter(LayerWriter):
    """A LayerWriter with one method per stage kind (the names in `valid.STAGES`)."""

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
        kind = self.draw(
            st.sampled_from(
                [
                    "pool",
                    "act",
                    "dropout",
                    "bn",
                    "lrn",
                    "identity",
                    "drop_path",
                    "adaptive_max",
                    "softmax",
                    "layer_scale",
                    "axis_norm",
                    "pad",
                    "conv_transpose",
                    "interpolate",
                ]
            )
        )
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
            self.op(
                "lrn", {"size": self.draw(st.integers(1, 5)), **({"alpha": 1e-3, "k": 2.0} if self.chance(0.5) else {})}
            )
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
        groups = draw(st.sampled_from(divisors(c))) if self.chance(0.3) else 1
        out = groups * draw(st.integers(1, max(1, MAX_CHANNELS // groups)))
        k, stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2)) if small else 1, draw(st.integers(1, 2))
        padding = draw(st.integers(0, dilation * (k - 1) // 2))
        extra = draw(st.integers(0, max(stride, dilation) - 1))
        oh, ow = (conv_transpose_output(n, k, stride, padding, extra, dilation) for n in (h, w))
        args: Data = {"out": self.num(out), "kernel": k}
        for key, value, default in (
            ("stride", stride, 1),
            ("padding", padding, 0),
            ("output_padding", extra, 0),
            ("dilation", dilation, 1),
            ("groups", groups, 1),
        ):
            if value != default or self.chance(0.1):
                args[key] = value
        bias = self.chance(0.6)
        if not bias:
            args["bias"] = False
        # every input position meets the whole kernel once per output channel of its group
        return self.op(
            "conv_transpose2d",
            args,
            name=name,
            out=(out, oh, ow),
            params=c * (out // groups) * k * k + (out if bias else 0),
            macs=h * w * c * (out // groups) * k * k,
        )

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
        return self.op(
            self.draw(st.sampled_from(["interpolate", "upsample"])), {**args, **self._mode()}, out=(c, oh, ow)
        )

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
            below = self.op(
                "conv2d",
                {"out": self.num(cb), "kernel": 1},
                name=f"{stem}_mid",
                out=(cb, lh, lw),
                params=cb * c + cb,
                macs=cb * lh * lw * c,
            )
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
        layers = [
            up,
            {"name": "cat", "op": "concat", "from": order},
            {"name": "conv", "op": "conv2d", "out": "$width", "kernel": 3, "padding": 1},
        ]
        nodes.append((".cat", "concat", (c + u, h, w), 0, 0))
        nodes.append((".conv", "conv2d", (width, h, w), width * (c + u) * 9 + width, width * h * w * (c + u) * 9))
        block = self.fresh("up_block")
        self.blocks[block] = {"inputs": [x, skip], "params": {"width": {"type": "int"}}, "layers": layers}
        self.put(
            {"name": stem, "op": block, "from": [below, src], "width": self.num(width)},
            (width, h, w),
            nodes,
            block=True,
        )
        where: Path = ("blocks", block, "layers")
        names = [x, skip, "up", "cat", "conv"]
        for k, layer in enumerate(layers):
            self.infos.append(LayerInfo((*where, k), layer["op"], False, True, tuple(names[: k + 2]), frozenset()))
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
        for k, kind in enumerate(
            self.draw(st.lists(st.sampled_from(["conv1", "convk", "pool", "src"]), min_size=2, max_size=3))
        ):
            name = f"{stem}_{k}"
            if kind == "src":
                parts.append(src)
            elif kind == "pool":
                op = self.draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
                parts.append(self.op(op, {"kernel": 3, "stride": 1, "padding": 1}, name=name, src=src, out=(c, h, w)))
            elif kind == "conv1":
                out = self.draw(st.integers(1, 12))
                parts.append(
                    self.op(
                        "conv2d",
                        {"out": self.num(out), "kernel": 1},
                        name=name,
                        src=src,
                        out=(out, h, w),
                        params=out * c + out,
                        macs=out * h * w * c,
                    )
                )
            else:
                parts.append(self.conv_keep(self.draw(st.integers(1, 12)), name, src=src))
        total = sum(self.names[p][0] for p in parts)
        args = {"axis": self.draw(st.sampled_from([0, -3]))} if self.chance(0.4) else {}
        self.op("concat", args, name=stem, src=parts, out=(total, h, w))

    def squeeze_excite(self) -> None:
        src, (c, h, w) = self.prev, self.shape
        stem = self.fresh("se")
        r = self.draw(st.integers(1, max(1, c // 2)))
        self.op(
            "adaptive_avgpool2d", {"size": self.draw(st.sampled_from([1, [1, 1]]))}, name=f"{stem}_pool", out=(c, 1, 1)
        )
        self.op(
            "conv2d",
            {"out": self.num(r), "kernel": 1},
            name=f"{stem}_reduce",
            out=(r, 1, 1),
            params=r * c + r,
            macs=r * c,
        )
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
        layer: Data = {
            "name": self.fresh("rep"),
            "op": "conv2d",
            "repeat": n if index == "i" and self.chance(0.7) else {"times": self.num(n), "index": index},
            "out": f"${{{base} + {index} * {step}}}" if step else base,
            "kernel": k,
            "padding": (k - 1) // 2,
        }
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
        layers: list[Data] = [
            {
                "name": "conv1",
                "op": "conv2d",
                "out": "$width",
                "kernel": k1,
                "stride": "$stride",
                "padding": p1,
                **({"dilation": d1} if d1 > 1 else {}),
                "bias": False,
            }
        ]
        if bn:
            layers.append({"name": "bn1", "op": "batchnorm"})
        layers.append({"op": act1})
        conv2: Data = {
            "name": "conv2",
            "op": "conv2d",
            "out": "$width",
            "kernel": k2,
            "padding": "same" if self.chance(0.3) else (k2 - 1) // 2,
        }
        if depthwise:
            conv2["groups"] = "$width"
        if not bias2:
            conv2["bias"] = False
        layers.append(conv2)
        if bn:
            layers.append({"name": "bn2", "op": "batchnorm"})
        main = layers[-1]["name"]
        layers.append(
            {
                "name": "shortcut",
                "op": "conv2d",
                "from": "input",
                "if": cond,
                "out": "$width",
                "kernel": 1,
                "stride": "$stride",
                "bias": False,
            }
        )
        if shortcut_bn:
            layers.append({"name": "shortcut_bn", "op": "batchnorm", "from": "shortcut", "if": cond})
        merge: Data = {"name": "merge"} if named_add else {}
        merge.update(
            {"op": "add", "from": [main, layers[-1]["name"]] if self.chance(0.5) else [layers[-1]["name"], main]}
        )
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
        use: Data = {
            "name": self.fresh("stage"),
            "op": block,
            "repeat": n if index == "i" else {"times": n, "index": index},
            "width": self.num(width) if not grow else f"${{{width} + {grow} * {index}}}",
            "stride": f"${{{stride} if {index} == 0 else 1}}",
        }
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
            nodes.append(
                (
                    f".{j}.conv2",
                    "conv2d",
                    out,
                    wj * (wj // g) * k2 * k2 + (wj if bias2 else 0),
                    wj * oh * ow * (wj // g) * k2 * k2,
                )
            )
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
            self.infos.append(LayerInfo((*where, k), layer["op"], False, live, tuple(local), frozenset(off)))
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
            self.op(
                "adaptive_avgpool2d",
                {"size": self.pair(a, b)},
                name="pool" if self.chance(0.5) else None,
                out=(c, a, b),
            )
            c, h, w = self.shape
        kind = draw(st.sampled_from(["flatten", "flatten", "tokens", "mean", "transformer"]))
        if kind == "transformer":
            self.transformer()
        elif kind == "mean":
            self.flatten = len(self.layers)
            keep = self.chance(0.3)
            axes = draw(st.sampled_from([[1, 2], [-1, -2], [2, 1]]))
            self.op(
                "mean",
                {"axes": axes, **({"keepdim": True} if keep else {})},
                name="gap",
                out=(c, 1, 1) if keep else (c,),
            )
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
            args = draw(
                st.sampled_from([{}, {"start": 0}, {"start": 0, "end": -1}, {"start": 0, "end": 2}, {"end": 2}])
            )
            self.op("flatten", args, out=(c * h * w,))
        for k in range(draw(st.integers(0, 2))):
            f = self.shape[0]
            d = draw(st.integers(2, 32))
            bias = self.chance(0.7)
            self.op(
                "linear",
                {"out": self.num(d), **({} if bias else {"bias": False})},
                name=f"hidden{k}",
                out=(d,),
                params=f * d + (d if bias else 0),
                macs=f * d,
            )
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
        self.op(
            "linear",
            args,
            name=draw(st.sampled_from(["fc", "classifier", "head"])),
            out=(classes,),
            params=f * classes + classes,
            macs=f * classes,
        )

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
        layers: list[Data] = [
            {"name": "ln1", "op": "layernorm"},
            {
                "name": "attn",
                "op": "self_attention",
                "heads": "$heads",
                **({} if attn_bias else {"bias": False}),
                **({"dropout": 0.1} if self.chance(0.3) else {}),
            },
        ]
        if drop_path:
            layers.append({"name": "dp", "op": "drop_path", "p": 0.1})
        layers += [
            {"name": "res1", "op": "add", "from": [layers[-1]["name"], "input"]},
            {"name": "ln2", "op": "layernorm"},
            {"name": "fc1", "op": "linear", "out": "${in_shape[-1] * mlp}"},
            {"op": "gelu"},
            {"name": "fc2", "op": "linear", "out": "${in_shape[-1] // mlp}"},
            {"name": "res2", "op": "add", "from": ["fc2", "res1"]},
        ]
        self.blocks[block] = {"params": {"heads": {"type": "int"}, "mlp": 2}, "layers": layers}
        n = draw(st.integers(1, 2))
        self.put(
            {"name": "encoder", "op": block, "repeat": n, "heads": self.num(heads), "mlp": mlp},
            (t, d),
            [
                node
                for j in range(n)
                for node in (
                    (f".{j}.ln1", "layernorm", (t, d), 2 * d, 0),
                    (
                        f".{j}.attn",
                        "self_attention",
                        (t, d),
                        4 * d * d + (4 * d if attn_bias else 0),
                        3 * t * d * d + 2 * t * t * d + t * d * d,
                    ),
                    *([(f".{j}.dp", "drop_path", (t, d), 0, 0)] if drop_path else []),
                    (f".{j}.res1", "add", (t, d), 0, 0),
                    (f".{j}.ln2", "layernorm", (t, d), 2 * d, 0),
                    (f".{j}.fc1", "linear", (t, d * mlp), d * d * mlp + d * mlp, t * d * d * mlp),
                    (f".{j}.gelu", "gelu", (t, d * mlp), 0, 0),
                    (f".{j}.fc2", "linear", (t, d), d * mlp * d + d, t * d * mlp * d),
                    (f".{j}.res2", "add", (t, d), 0, 0),
                )
            ],
            block=True,
        )
        where: Path = ("blocks", block, "layers")
        names = ["input", *(layer.get("name", "gelu") for layer in layers)]
        for k, layer in enumerate(layers):
            self.infos.append(LayerInfo((*where, k), layer["op"], False, True, tuple(names[: k + 1]), frozenset()))
        self.scopes[where] = tuple(names)
        self.layernorm(d)
        if cls and self.chance(0.7):
            self.op("select", {"axis": 0, "position": 0} if self.chance(0.5) else {}, name="pick", out=(d,))
        elif self.chance(0.5):
            self.op(
                "select",
                {"axis": self.draw(st.sampled_from([0, -2])), "position": draw(st.integers(-t, t - 1))},
                name="pick",
                out=(d,),
            )
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
        self.op(
            "roll",
            {"shifts": [draw(st.integers(-h, h)), draw(st.integers(-w, w))], "axes": [0, 1]}
            if self.chance(0.7)
            else {"shifts": draw(st.integers(-3, 3)), "axes": -1},
        )
        start, step = draw(st.integers(0, h - 1)), draw(st.integers(1, 3))
        stop = draw(st.one_of(st.none(), st.integers(start + 1, h)))
        rows = len(range(start, stop if stop is not None else h, step))
        self.op(
            "slice",
            {"axis": 0, "start": start, "step": step, **({} if stop is None else {"stop": stop})},
            out=(rows, w, c),
        )
        k = draw(st.integers(1, 6))
        index = draw(st.lists(st.integers(0, c - 1), min_size=k, max_size=k))
        picked = self.op("gather", {"axis": -1, "index": index}, name=self.fresh("index"), out=(rows, w, k))
        m = draw(st.integers(1, 6))
        table = self.op(
            "parameter",
            {
                "shape": [rows, k, m],
                "init": draw(st.sampled_from(["zeros", {"trunc_normal": {"std": 0.02}}, {"constant": {"value": 0.5}}])),
            },
            name=self.fresh("table"),
            src=picked,
            out=(rows, k, m),
            params=rows * k * m,
        )
        product = self.op(
            "matmul", name=self.fresh("product"), src=[picked, table], out=(rows, w, m), macs=rows * w * k * m
        )
        bias = self.op(
            "constant",
            {"shape": [1, w, w], "values": f"${{[[[(i - j) / {w} for j in range({w})] for i in range({w})]]}}"},
            name=self.fresh("bias"),
            src=product,
            out=(1, w, w),
        )
        inputs = [product, product, product, bias]
        if self.chance(0.4):  # a second bias, computed in the graph: -100 where two positions differ (Swin's mask)
            ids = self.op(
                "constant",
                {"shape": [1, w], "values": [[j % 2 for j in range(w)]]},
                src=product,
                name=self.fresh("ids"),
                out=(1, w),
            )
            row = self.op("reshape", {"shape": [1, 1, w]}, src=ids, out=(1, 1, w))
            col = self.op("reshape", {"shape": [1, w, 1]}, src=ids, out=(1, w, 1))
            self.op("sub", src=[row, col], out=(1, w, w))
            self.op("abs")
            self.op("clamp", {"max": 1.0})
            inputs.append(self.op("scale", {"factor": -100.0}, name=self.fresh("mask")))
        args: Data = {}
        if self.chance(0.3):
            args["scale"] = draw(st.sampled_from([0.5, 1.0]))
        self.op(
            "attention", args, name=self.fresh("attention"), src=inputs, out=(rows, w, m), macs=2 * rows * w * w * m
        )
        kind = draw(st.sampled_from(["normalize", "exp", "clamp", "none"]))
        if kind == "normalize":
            self.op("normalize", {"axis": draw(st.sampled_from([-1, 0]))})
        elif kind == "exp":
            self.op("exp")
        elif kind == "clamp":
            self.op("clamp", {"min": -0.5, "max": 0.5})
        self.op("permute", {"dims": [2, 0, 1]}, out=(m, rows, w))
