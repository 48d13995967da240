"""The figures a generated spec must compile to, torch's size formulas written out independently of
archspec's ops, and the shared vocabulary of the writers and mutators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml

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
TRICKY_NAMES = (
    "torch",
    "x",
    "getattr",
    "operator",
    "math",
    "inf",
    "nan",
    "device",
    "output",
    "input_1",
    "print",
    "list",
    "sum",
    "len",
    "range",
    "max",
    "relu",
    "F",
    "nn",
    "fx",
    "None_",
    "bool",
    "int",
)
LAYER_KEYS = ("op", "name", "from", "repeat", "if", "else", "trainable", "init")  # a typo must not land on one
FAKE_BOOLS = ("yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n", "Y", "N")


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


def divisors(n: int) -> list[int]:
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
class LayerInfo:
    """Where a written layer is, and what a mutation needs to know about it."""

    path: Path
    op: str
    block: bool  # op is a block of the spec
    live: bool  # lowering evaluates its arguments (not under a false if:, not repeat: 0)
    before: tuple[str, ...]  # names its from: may use (earlier layers of its scope, input)
    skipped_before: frozenset[str]  # of those, layers switched off by if:


@dataclass(frozen=True)
class Case:
    data: Data
    facts: SpecFacts
    layers: tuple[LayerInfo, ...]
    scopes: Mapping[Path, tuple[str, ...]]  # layer-list path -> every name defined in it
    env: Mapping[str, int]  # spec parameters and vars with int values
    flatten: int  # index in layers: of the (first) flatten
    classifier_in: int  # input features of the last linear layer
