"""How an op is declared: data, not procedures.

An op is a name, a typed parameter model, its input arity, and pure functions of the parameters and
the per-sample input shapes for the output shape, the trainable tensors (from which the parameter
count follows) and the multiply-accumulate count. Nothing here knows any backend: each backend keeps
its own lowering table keyed by op name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from archspec.ir import Shape, numel

# Keys a layer uses for itself; an op parameter may not take one of these names. A layer's `init:` is not
# among them: ops that declared an `init` argument before the layer key existed (parameter, layer_scale) keep
# it, and on such an op the layer's `init:` is that argument (archspec.spec.Layer.init).
RESERVED_LAYER_KEYS = frozenset({"op", "name", "from", "repeat", "if", "else", "trainable"})

# The largest finite float32. An op's float argument ends up in a float32 tensor or computation (a clamp bound,
# a pad value, a layer_scale's initial value, an eps); beyond this it becomes inf there, so every forward
# raises or ONNX/AOTI silently output inf/NaN. Refused at validation instead, where the argument has a place.
FLOAT32_MAX = 3.4028234663852886e38


def float32_problem(value: object) -> str | None:
    """Why `value` (a float, or tuples and mappings of them) cannot be a float32; None when it can.
    Integers are left alone: an int argument is a count, a size or an index, checked by its own bounds."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not -FLOAT32_MAX <= item <= FLOAT32_MAX:  # NaN fails this too
                return f"{item!r} is not a finite number within float32's range (+-{FLOAT32_MAX:.4g})"
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
    return None


class OpParams(BaseModel):
    """Base of every op's parameter model: unknown keys are errors, values are immutable,
    and no silent coercion (a bool is not an int, a string is not a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # One check for every float argument of every op, plugins' included, rather than a bound per field.
    # An op that needs infinities takes them as the strings '-inf'/'inf' (constant's values), never as floats.
    @field_validator("*", mode="after")
    @classmethod
    def _fits_float32(cls, value: Any, info: ValidationInfo) -> Any:
        problem = float32_problem(value)
        if problem is not None:
            raise PydanticCustomError("float32_range", problem)  # not ValueError: no "Value error, " prefix
        return value


class NoParams(OpParams):
    pass


class ShapeError(Exception):
    """An op cannot take the shapes it is given.

    `expects` completes the sentence "<op> '<layer>' ...", e.g. "expects 256 input channels".
    `input` is the index of the offending input, whose producer and shape the caller names;
    None when the problem is between inputs (the caller then lists them all).
    """

    def __init__(self, expects: str, input: int | None = 0):
        super().__init__(expects)
        self.expects = expects
        self.input = input


def sample_axis(axis: int, rank: int) -> int:
    """`axis` of a rank-`rank` sample (batch excluded) as a non-negative index; ShapeError outside it."""
    if not -rank <= axis < rank:
        raise ShapeError(f"uses axis {axis}, outside a rank-{rank} sample")
    return axis % rank


P = TypeVar("P", bound=OpParams)
ShapeFn = Callable[[P, Sequence[Shape]], Shape]
WeightsFn = Callable[[P, Sequence[Shape]], Mapping[str, Shape]]
MacsFn = Callable[[P, Sequence[Shape], Shape], int]
TiesFn = Callable[[P, Sequence[Shape]], Mapping[str, tuple[str, Shape]]]


def _no_weights(params: Any, inputs: Sequence[Shape]) -> Mapping[str, Shape]:
    return {}


def _no_macs(params: Any, inputs: Sequence[Shape], output: Shape) -> int:
    return 0


def _no_ties(params: Any, inputs: Sequence[Shape]) -> Mapping[str, tuple[str, Shape]]:
    return {}


# What an op does with integer values (token ids, an int64 input): a closed set.
#   refuse  it computes with floats; integer input is a located error (AS504). Most ops.
#   pass    it only moves or selects values (reshape, slice, ...): integer in, integer out.
#   lookup  it takes integer ids and gives floats (embedding); float input is a located error (AS504).
IntegerUse = Literal["refuse", "pass", "lookup"]


@dataclass(frozen=True)
class OpDef(Generic[P]):
    """A declared op.

    `arity` is (min, max) inputs; max None means any number. `weights` names each trainable tensor
    with its shape, in the order a backend registers them: this order is what `--weights` matches
    reference state dicts by. `ties` names the tensors the layer uses from another layer instead of its
    own (a tied LM head): own leaf -> (the other tensor's path as the spec writes it, the shape it must
    have); such a tensor is not in `weights`, so it is counted once, at its owner. `integer` says what the
    op does with integer values (IntegerUse).
    """

    name: str
    params: type[P]
    arity: tuple[int, int | None]
    shape: ShapeFn[P]
    weights: WeightsFn[P] = _no_weights
    macs: MacsFn[P] = _no_macs
    doc: str = ""
    category: str = "misc"
    integer: IntegerUse = "refuse"
    ties: TiesFn[P] = _no_ties

    def __post_init__(self) -> None:
        clash = RESERVED_LAYER_KEYS & set(self.params.model_fields)
        if clash:
            raise ValueError(f"op {self.name!r}: parameter names {sorted(clash)} are reserved layer keys")

    def param_count(self, params: P, inputs: Sequence[Shape]) -> int:
        return sum(numel(s) for s in self.weights(params, inputs).values())


@dataclass(frozen=True)
class Plugin:
    """What one entry point of the `archspec.plugins` group provides.

    `backends` maps a backend name to "module:attribute" of an object implementing
    `archspec.backends.Backend`, imported only when that backend is used, so heavy
    dependencies stay out of `archspec validate`. `lowerings` maps a backend name to
    "module:attribute" of a dict op-name -> lowering function, for ops this plugin adds
    to a backend it does not own.
    """

    ops: Sequence[OpDef[Any]] = ()
    backends: Mapping[str, str] = field(default_factory=dict)
    lowerings: Mapping[str, str] = field(default_factory=dict)
