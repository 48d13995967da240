"""Initialization as spec data: the closed set of distributions an `init:` rule may name.

A rule gives, per tensor of the layers it matches, either a name (`zeros`) or a one-key mapping of a
name to its arguments (`{kaiming_normal: {mode: fan_out, nonlinearity: relu}}`); arguments may be
expressions over the spec's parameters and vars. Lowering evaluates them into `archspec.ir.Init` data on
each node; a backend maps each name to its own call (the torch backend: `torch.nn.init`). The names and
arguments follow `torch.nn.init`, and timm's `trunc_normal_tf_` / `variance_scaling_` where torch has no
equivalent, so a reference's constructor reads across one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.ir import Init, InitArg

_MODES = ("fan_in", "fan_out")
_NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")

# name -> argument -> default (the type follows the default; a tuple of strings is a choice).
DISTRIBUTIONS: Mapping[str, Mapping[str, Any]] = {
    "default": {},  # whatever the backend's layer does by itself (PyTorch's reset_parameters)
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.0},
    "normal": {"mean": 0.0, "std": 1.0},
    "uniform": {"a": 0.0, "b": 1.0},
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},  # bounds a, b absolute (torch)
    "trunc_normal_tf": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},  # bounds in units of std (timm)
    "kaiming_normal": {"a": 0.0, "mode": _MODES, "nonlinearity": ("leaky_relu", *_NONLINEARITIES)},
    "kaiming_uniform": {"a": 0.0, "mode": _MODES, "nonlinearity": ("leaky_relu", *_NONLINEARITIES)},
    "xavier_normal": {"gain": 1.0},
    "xavier_uniform": {"gain": 1.0},
    # timm's variance_scaling_: std = sqrt(scale / fan); truncated_normal is timm's lecun_normal_ at scale 1.
    "variance_scaling": {
        "scale": 1.0,
        "mode": ("fan_in", "fan_out", "fan_avg"),
        "distribution": ("normal", "truncated_normal", "uniform"),
    },
}


def split(value: object) -> tuple[str, Mapping[str, Any]] | str:
    """A rule's value -> (distribution name, raw arguments), or a message saying what is wrong."""
    if isinstance(value, str):
        name, args = value, {}
    elif isinstance(value, dict) and len(value) == 1:
        name, raw = next(iter(value.items()))
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return f"write {{{name}: {{argument: value, ...}}}}"
        args = raw
    else:
        return "a distribution is a name (zeros) or {name: {argument: value}} (e.g. {normal: {std: 0.01}})"
    if name not in DISTRIBUTIONS:
        from archspec.errors import did_you_mean

        return (
            f"unknown distribution {name!r}.{did_you_mean(str(name), DISTRIBUTIONS)} Known: {', '.join(DISTRIBUTIONS)}"
        )
    unknown = [k for k in args if k not in DISTRIBUTIONS[name]]
    if unknown:
        allowed = ", ".join(DISTRIBUTIONS[name]) or "none"
        return f"{name} has no argument {unknown[0]!r}; its arguments: {allowed}"
    return name, args


def make(name: str, args: Mapping[str, object]) -> Init | str:
    """Evaluated arguments -> Init (defaults filled in), or a message saying which argument is wrong."""
    values: list[tuple[str, InitArg]] = []
    numbers: dict[str, float] = {}
    for key, default in DISTRIBUTIONS[name].items():
        value = args.get(key, default[0] if isinstance(default, tuple) else default)
        if isinstance(default, tuple):
            if not isinstance(value, str) or value not in default:
                return f"{name} {key}: {value!r} is not one of {', '.join(default)}"
            values.append((key, value))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} {key}: {value!r} is not a number"
        else:
            # The tensor it fills is float32: beyond its range a value (or a bound) would be inf there, and an
            # integer too large for a float would not even convert (OverflowError). NaN fails this too.
            if not -FLOAT32_MAX <= value <= FLOAT32_MAX:
                shown = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else repr(value)
                return f"{name} {key}: {shown} is not a finite number within float32's range (+-{FLOAT32_MAX:.4g})"
            number = float(value)
            numbers[key] = number
            values.append((key, number))
    if numbers.get("std", 0.0) < 0:
        return f"{name} std: must be >= 0"
    if name in ("uniform", "trunc_normal", "trunc_normal_tf") and numbers["a"] > numbers["b"]:
        return f"{name}: a must not exceed b"
    return Init(name, tuple(values))


# A layer's own init: may also list a tensor's values: {values: [...]} (nested lists or one flat list, in
# the tensor's order; usually an expression). Kept apart from DISTRIBUTIONS: it draws nothing, and its
# element count is checked against the tensor it fills.
VALUES = "values"
FLOAT32_MAX = 3.4028234663852886e38


def split_layer_rule(value: object) -> tuple[str, Mapping[str, Any]] | str:
    """A layer init: entry -> (VALUES, {"values": raw}) or a distribution as `split` gives it, or a message."""
    if isinstance(value, dict) and len(value) == 1 and VALUES in value:
        return VALUES, {VALUES: value[VALUES]}
    parsed = split(value)
    if isinstance(parsed, str) and not isinstance(value, str):
        return parsed + "; or list the tensor's values: {values: [...]}"
    return parsed


def flat_values(value: object) -> tuple[float, ...] | str:
    """Evaluated values (numbers in nested tuples or lists) -> the flat tuple, or a message saying what is wrong."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        return f"values: gives {value!r}; give a (nested) list of numbers"
    out: list[float] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if not -FLOAT32_MAX <= item <= FLOAT32_MAX:  # NaN fails this too; float32 would make it inf
                return f"values: {item!r} is not a finite number within float32's range (+-{FLOAT32_MAX:.4g})"
            out.append(float(item))
        else:
            return f"values: holds {item!r}; give numbers"
    return tuple(out)
