"""`invalid_specs()`: mutations of valid specs that must be rejected, each with the error codes (and
where unambiguous the line) the rejection must have."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import copy
from dataclasses import dataclass
import json
from typing import Any

from hypothesis import strategies as st
import yaml

from archspec.expr import FUNCTIONS
from archspec.registry import default_registry
from archspec.testing.strategies.facts import FAKE_BOOLS, LAYER_KEYS, Case, Data, InvalidSpec, LayerInfo, Path, dump
from archspec.testing.strategies.valid import cases


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
            typo = word[:k] + word[k + 1 :]
        elif kind == "swap" and len(word) > 1:
            k = min(k, len(word) - 2)
            typo = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif kind == "double":
            typo = word[:k] + word[k] + word[k:]
        elif kind == "case":
            typo = word[:k] + word[k].swapcase() + word[k + 1 :]
        elif kind == "replace":
            typo = word[:k] + draw(st.sampled_from("aeiouxz")) + word[k + 1 :]
        else:
            typo = word + draw(st.sampled_from(["s", "_", "2", "x"]))
        if (
            typo
            and typo not in taken
            and typo[0].isalpha()
            and typo.isidentifier()
            and typo.lower() not in ("true", "false", "null", *(b.lower() for b in FAKE_BOOLS))
        ):
            return typo
    return None


# Wrong values for op arguments: every one must be rejected (AS403) when the layer is lowered.
WRONG_VALUES: Mapping[str, Mapping[str, Sequence[Any]]] = {
    "conv2d": {
        "out": [2.5, "8", True, [8], 0, -4],
        "kernel": [2.5, "3", True, [3, 3, 3], [3]],
        "stride": [1.5, "2", True],
        "padding": ["full", 1.5, True],
        "dilation": [True, 1.5],
        "groups": [0, 1.5, True],
        "bias": [1, 0, "true", None],
        "in_channels": [2.5, "3"],
    },
    "batchnorm": {"eps": [0, -1e-5, "small", True], "momentum": ["fast", True], "affine": [1, "yes"]},
    "layernorm": {"eps": [0, "tiny"], "affine": [1], "bias": [0, "no"], "axis": [0.5, "0"]},
    "layer_scale": {"init": ["small", True], "axis": [0.5, "0", True]},
    "pad": {"widths": ["x", 1, [[1]], [[-1, 0], [0, 0], [0, 0]], [[0.5, 0], [0, 0], [0, 0]]], "value": ["zero", True]},
    "linear": {"out": [0, -1, 2.5, "10", True], "bias": [1, "no"], "in_features": ["x", 1.5]},
    "maxpool2d": {
        "kernel": [2.5, "2", True],
        "stride": [1.5, "2"],
        "padding": [0.5, "1"],
        "ceil_mode": [1, "true"],
        "dilation": [1.5, True],
    },
    "avgpool2d": {
        "kernel": [2.5, "2", True],
        "stride": [1.5, "2"],
        "padding": [0.5, "1"],
        "ceil_mode": [1, "true"],
        "count_include_pad": [0, "false"],
    },
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
WRONG_BLOCK_VALUES: Mapping[str, Sequence[Any]] = {
    "width": [2.5, "wide", True, [8]],
    "stride": [1.5, "2", False],
    "downsample": [1, "yes", 0],
    "heads": [1.5, "two", [2]],
    "mlp": [0.5, "x", True],
}


@dataclass
class _Mutator:
    draw: Callable[[st.SearchStrategy[Any]], Any]
    case: Case

    def __post_init__(self) -> None:
        self.data = copy.deepcopy(self.case.data)
        self.ops, self.args = _registry_names()

    # -- helpers -------------------------------------------------------------------------------------
    def layer(self, where: Callable[[LayerInfo], bool] = lambda info: True) -> LayerInfo | None:
        options = [info for info in self.case.layers if where(info)]
        return self.draw(st.sampled_from(options)) if options else None

    def text(
        self, subs: Mapping[str, str], codes: Iterable[str], mutation: str, line_of: str | None = None
    ) -> InvalidSpec:
        text, lines = _render(self.data, subs)
        return InvalidSpec(text, frozenset(codes), mutation, lines[line_of] if line_of else None)

    def put_value(self, path: Path, raw: str, codes: Iterable[str], mutation: str) -> InvalidSpec:
        """Set the value at `path` (a mapping entry, created if missing) to raw YAML text."""
        _at(self.data, path[:-1])[path[-1]] = _token(0)
        return self.text({_token(0): raw}, codes, mutation, _token(0))

    def known_names(self) -> set[str]:
        names = set(self.case.env) | {
            "i",
            "j",
            "in_channels",
            "in_shape",
            "width",
            "stride",
            "downsample",
            "project",
            "heads",
            "mlp",
        }
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

    def _wrong_value(
        self, table: Mapping[str, Mapping[str, Sequence[Any]]], label: str, codes: Iterable[str]
    ) -> InvalidSpec | None:
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
                return self.put_value(
                    (*info.path, key), json.dumps(value), {"AS208"}, f"block {info.op} {key}: {value!r}"
                )
        return self._wrong_value(WRONG_VALUES, "wrong value", {"AS403"})

    def degenerate_arg(self) -> InvalidSpec | None:
        return self._wrong_value(DEGENERATE_VALUES, "degenerate size", {"AS403", "AS501"})

    def bad_repeat(self) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live)
        assert info is not None
        value = self.draw(
            st.sampled_from(
                [
                    -1,
                    -3,
                    1.5,
                    "${-1}",
                    "${3 / 2}",
                    "${2.0}",
                    "two",
                    {"times": -2},
                    {"times": "${0.5}"},
                    {"times": 1.5},
                    "${base - 100}",
                ]
            )
        )
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
        pick = next(
            (k for k, layer in enumerate(layers) if layer.get("name") == "pick" and layer["op"] == "select"), None
        )
        kind = self.draw(
            st.sampled_from(
                [
                    "groups",
                    "kernel",
                    "dilated",
                    "in_channels",
                    "same_stride",
                    "pool_padding",
                    "pool_kernel",
                    "add",
                    "concat",
                    "rank",
                    "flatten_axes",
                    "in_features",
                    "attention_rank",
                ]
                + ["heads"] * (encoder is not None)
                + ["position"] * (pick is not None)
            )
        )
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
            bad.update(
                {"conv2d": {"out": 4, "kernel": 1}, "maxpool2d": {"kernel": 1}, "adaptive_avgpool2d": {"size": 1}}[
                    bad["op"]
                ]
            )
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
        raw = self.draw(
            st.sampled_from(
                ["[1, 2", "{a: 1", "'abc", '"abc', "@at", "`tick", "%percent", "\x07", "a: b: c", "[1, 2]]", "!"]
            )
        )
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
        word = self.draw(st.sampled_from(FAKE_BOOLS))
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
        return self._expression(
            [
                "${in_channels.real}",
                "${base.bit_length()}",
                "${(1).__class__}",
                "${in_shape.count(1)}",
                "${num_classes.numerator * 1}",
                "${[1, 2].index(1)}",
                "${(lambda: 3)()}",
                "${sum(x for x in range(3))}",
                "${[x.real for x in range(3)][0]}",
                "${{x for x in range(3)}}",
                "${base if (y := 2) else 1}",
            ],
            {"AS302"},
            "forbidden construct",
        )

    def unknown_variable(self) -> InvalidSpec:
        known = self.known_names()
        typo = _typos(self.draw, self.draw(st.sampled_from(sorted(self.case.env))), known) or "undefined_thing"
        fn = (
            _typos(self.draw, self.draw(st.sampled_from(["floor", "ceil", "make_divisible", "max"])), known) or "floorr"
        )
        exprs = [
            f"${{{typo} * 2}}",
            "${in_channel + 1}",
            f"${{{fn}(3.5)}}",
            "${undefined_thing}",
            "${__import__('os')}",
        ]
        return self._expression(exprs, {"AS303"}, "unknown name")

    def bad_expression(self) -> InvalidSpec:
        if self.draw(st.booleans()):
            return self._expression(
                ["${1 +}", "${(}", "${base +* 2}", "${}", "${base base}", "${[1, 2}"], {"AS301"}, "syntax"
            )
        return self._expression(
            ["${base // 0}", "${1 % 0}", "${[1, 2][5]}", "${'a' + 1}", "${max([])}", "${sqrt(-1)}"],
            {"AS304"},
            "failing",
        )

    def missing_key(self) -> InvalidSpec:
        kind = self.draw(st.sampled_from(["top", "op", "arg", "block_arg", "block_layers"]))
        if kind == "top":
            # (name: may be left out: the file's name is the spec's)
            key = self.draw(st.sampled_from(["input", "layers", "archspec"]))
            del self.data[key]
            # without layers: but with blocks:, the file reads as a block library (AS203 says how to import it)
            return self.text({}, {"AS201", "AS207", "AS203"}, f"no {key}:")
        if kind == "block_layers" and self.data.get("blocks"):
            name = self.draw(st.sampled_from(sorted(self.data["blocks"])))
            del self.data["blocks"][name]["layers"]
            return self.text({}, {"AS201"}, f"block {name} has no layers:")
        if kind == "block_arg":
            info = self.layer(lambda i: i.live and i.block)
            if info is not None:
                layer = _at(self.data, info.path)
                declared = self.data["blocks"][info.op]["params"]
                key = self.draw(
                    st.sampled_from([k for k, v in declared.items() if isinstance(v, dict) and "default" not in v])
                )
                del layer[key]
                return self._named(layer, {"AS201"}, f"block {info.op} without {key}")
        if kind == "arg":
            required = {
                "conv2d": ("out", "kernel"),
                "linear": ("out",),
                "maxpool2d": ("kernel",),
                "avgpool2d": ("kernel",),
                "adaptive_avgpool2d": ("size",),
            }
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
        name = self.draw(
            st.sampled_from(["1conv", "conv-1", "conv.", "class", "_private", "conv 1", "", "lambda", "x.01"])
        )
        return self.put_value((*info.path, "name"), json.dumps(name), {"AS409"}, f"name: {name!r}")

    def duplicate_layer_name(self) -> InvalidSpec | None:
        info = self.layer(lambda i: i.live and len(i.before) > 1)
        if info is None:
            return None
        taken = [n for n in info.before if n not in info.skipped_before]
        name = self.draw(st.sampled_from(taken))
        # in a block with inputs:, a layer named like an input is AS441 (validation, before lowering's AS407)
        return self.put_value(
            (*info.path, "name"), json.dumps(name), {"AS407", "AS441"}, f"second layer named {name!r}"
        )

    def unknown_key(self) -> InvalidSpec:
        place = self.draw(st.sampled_from(["top", "param", "block"]))
        if place == "block" and self.data.get("blocks"):
            mapping = self.data["blocks"][self.draw(st.sampled_from(sorted(self.data["blocks"])))]
            key = self.draw(st.sampled_from(["layer", "param", "outputz", "var"]))
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
        key, code, value = self.draw(
            st.sampled_from(
                [
                    ("params", "AS601", facts.params + 1),
                    ("macs", "AS602", facts.macs + 7),
                    ("output", "AS603", [*facts.output, 1]),
                    ("input", "AS604", [facts.input[0] + 1, *facts.input[1:]]),
                ]
            )
        )
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
        raw, code = self.draw(
            st.sampled_from(
                [
                    (".nan", "AS105"),
                    (".inf", "AS105"),
                    ("-.Inf", "AS105"),
                    (".NaN", "AS105"),
                    ("!!str 3", "AS109"),
                    ("!!python/object:os.system x", "AS109"),
                    ("!custom 1", "AS109"),
                    ("!!int 3", "AS109"),
                ]
            )
        )
        return self.put_value((*info.path, key), raw, {code}, f"{key}: {raw}")

    def bad_structure(self) -> InvalidSpec:
        kind = self.draw(
            st.sampled_from(
                [
                    "version",
                    "param_default",
                    "reserved_param",
                    "block_named_op",
                    "layer_string",
                    "empty_layers",
                    "output",
                    "arity",
                ]
            )
        )
        if kind == "version":
            return self.put_value(
                ("archspec",), json.dumps(self.draw(st.sampled_from([2, 0, "1", 1.5]))), {"AS207"}, "version"
            )
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
            return self.text(
                {_token(0): self.draw(st.sampled_from(["relu", "3", "[relu]"]))},
                {"AS203"},
                "a layer that is no mapping",
                _token(0),
            )
        if kind == "empty_layers":
            self.data["layers"] = []
            return self.text({}, {"AS201", "AS203", "AS410"}, "no layers")
        if kind == "output":
            self.data["output"] = _token(0)
            name = (
                _typos(self.draw, self.data["layers"][-1].get("name", "fc"), self.case.scopes[("layers",)]) or "nowhere"
            )
            return self.text({_token(0): json.dumps(name)}, {"AS401"}, f"output: {name}", _token(0))
        # arity: an add with one input, or a linear with two
        bad = self.draw(
            st.sampled_from(
                [
                    {"op": "add"},
                    {"op": "mul", "from": ["input"]},
                    {"op": "linear", "out": 3, "from": ["input", "input"]},
                ]
            )
        )
        self.data["layers"].insert(0, {"name": _token(0), **bad})
        return self.text({_token(0): "bad"}, {"AS402"}, f"arity: {bad}", _token(0))


def _parses(text: str) -> bool:
    try:
        list(yaml.parse(text))
    except yaml.YAMLError:
        return False
    return True


MUTATIONS: tuple[str, ...] = (
    "near_miss_op",
    "bad_arg_name",
    "wrong_arg_type",
    "degenerate_arg",
    "bad_repeat",
    "bad_from",
    "shape_mismatch",
    "broken_yaml",
    "duplicate_key",
    "alias",
    "yes_bool",
    "attribute_access",
    "unknown_variable",
    "bad_expression",
    "missing_key",
    "bad_if",
    "bad_layer_name",
    "duplicate_layer_name",
    "unknown_key",
    "wrong_expect",
    "block_cycle",
    "bad_scalar",
    "bad_structure",
)


@st.composite
def _invalid(draw: Callable[[st.SearchStrategy[Any]], Any], kinds: Sequence[str], max_stages: int) -> InvalidSpec:
    case = draw(cases(max_stages))
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
