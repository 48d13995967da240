"""The functions an expression may call, by name (FUNCTIONS). Nothing else is callable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import inspect
import math
from types import MappingProxyType

from archspec.expr.errors import ExprError
from archspec.expr.limits import MAX_EXPONENT, MAX_SEQUENCE_LEN
from archspec.expr.values import Value, bounded, is_int, is_num, limit_size, type_name

# Each validates its arguments itself, since FUNCTIONS is public and may be called from Python too.

_FUNCTIONS: dict[str, Callable[..., Value]] = {}
FUNCTIONS: Mapping[str, Callable[..., Value]] = MappingProxyType(_FUNCTIONS)


def _number(v: Value, fn: str) -> int | float:
    if isinstance(v, bool):
        raise ExprError("AS304", f"{fn}(): booleans are not numbers")
    if not is_num(v):
        raise ExprError("AS304", f"{fn}() needs a number, not {type_name(v)}")
    return v  # type: ignore[return-value]


def _whole(v: Value, fn: str) -> int:
    if not is_int(v):
        raise ExprError("AS304", f"{fn}() needs a whole number, not {type_name(v)}")
    return v  # type: ignore[return-value]


def _sqrt(x: float) -> float:
    if x < 0:
        raise ExprError("AS304", "sqrt() of a negative number")
    return math.sqrt(x)


def _one_number(name: str, op: Callable[[float], Value], doc: str) -> Callable[[Value], Value]:
    def fn(x: Value) -> Value:
        return bounded(op(_number(x, name)))  # ceil(1e300) is a huge int: bounded like any result

    fn.__name__, fn.__doc__ = name, doc
    return fn


def _one_value(name: str, test: Callable[[Value], bool], doc: str) -> Callable[[Value], Value]:
    def fn(x: Value) -> Value:
        return test(x)

    fn.__name__, fn.__doc__ = name, doc
    return fn


for _fn in (
    _one_number("ceil", math.ceil, "The smallest whole number >= x."),
    _one_number("floor", math.floor, "The largest whole number <= x."),
    _one_number("round_half_up", lambda x: math.floor(x + 0.5), "Rounds halves up: floor(x + 0.5), so 2.5 -> 3."),
    _one_number("int", int, "A number truncated toward zero, like Python's int(): 2.7 -> 2, -2.7 -> -2."),
    _one_number("float", float, "A number as a float."),
    _one_number("abs", abs, "The absolute value of a number."),
    _one_number("sqrt", _sqrt, "The square root of a number >= 0, as a float."),
    _one_value("is_int", is_int, "True for a whole number (booleans are not numbers)."),
    _one_value("is_list", lambda x: isinstance(x, tuple), "True for a list."),
    _one_value("is_str", lambda x: isinstance(x, str), "True for a string."),
):
    _FUNCTIONS[_fn.__name__] = _fn


def _function(fn: Callable[..., Value]) -> Callable[..., Value]:
    _FUNCTIONS[fn.__name__.removeprefix("_")] = fn
    return fn


@_function
def _round(x: Value, ndigits: Value = None) -> Value:
    """Python's round: halves go to the even neighbour (round(2.5) == 2); optional ndigits."""
    if ndigits is None:
        return bounded(round(_number(x, "round")))
    if abs(_whole(ndigits, "round")) > MAX_EXPONENT:  # round(5, -10**9) would compute 10**10**9
        raise ExprError("AS305", f"round(): ndigits must be between -{MAX_EXPONENT} and {MAX_EXPONENT}")
    return bounded(round(_number(x, "round"), ndigits))  # type: ignore[arg-type]


def _extreme(name: str, pick: Callable[..., Value], args: tuple[Value, ...]) -> Value:
    items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    if not items:
        raise ExprError("AS304", f"{name}() of an empty list")
    if all(is_num(v) for v in items) or all(isinstance(v, str) for v in items):
        return pick(items)
    kinds = ", ".join(sorted({type_name(v) for v in items}))
    raise ExprError("AS304", f"{name}() needs all numbers or all strings, got {kinds}")


@_function
def _min(*args: Value) -> Value:
    """The smallest of several arguments, or of the elements of one list."""
    return _extreme("min", min, args)


@_function
def _max(*args: Value) -> Value:
    """The largest of several arguments, or of the elements of one list."""
    return _extreme("max", max, args)


@_function
def _sum(xs: Value) -> Value:
    """The sum of a list of numbers (0 for an empty list)."""
    if not isinstance(xs, tuple):
        raise ExprError("AS304", f"sum() needs a list, not {type_name(xs)}")
    return bounded(sum(_number(x, "sum") for x in xs))


@_function
def _len(x: Value) -> Value:
    """The number of elements of a list or characters of a string."""
    if not isinstance(x, (tuple, str)):
        raise ExprError("AS304", f"len() needs a list or a string, not {type_name(x)}")
    return len(x)


@_function
def _range(*args: Value) -> Value:
    """range(stop), range(start, stop) or range(start, stop, step) as a list, like Python's."""
    if not 1 <= len(args) <= 3:
        raise ExprError("AS304", f"range() takes 1 to 3 arguments, got {len(args)}")
    bounds = [_whole(a, "range") for a in args]
    if len(bounds) == 3 and bounds[2] == 0:
        raise ExprError("AS304", "range() step cannot be zero")
    r = range(*bounds)
    try:
        limit_size(len(r))  # O(1): the tuple is built only once it is known to be small
    except OverflowError:  # longer than sys.maxsize
        limit_size(MAX_SEQUENCE_LEN + 1)
    return tuple(r)


@_function
def _log(x: Value, base: Value = None) -> Value:
    """The natural logarithm of x > 0, or its logarithm to a base > 0 other than 1, as a float."""
    v = _number(x, "log")
    if v <= 0:
        raise ExprError("AS304", f"log() of {v}: the argument must be above 0")
    if base is None:
        return math.log(v)
    b = _number(base, "log")
    if b <= 0 or b == 1:
        raise ExprError("AS304", f"log() to base {b}: the base must be above 0 and not 1")
    return math.log(v) / math.log(b)  # not math.log(v, b), which would turn huge ints into the same floats anyway


@_function
def _exp(x: Value) -> Value:
    """e raised to the power x, as a float (an overflow is an error, not infinity)."""
    try:
        return bounded(math.exp(_number(x, "exp")))
    except OverflowError:
        raise ExprError("AS305", f"exp({x}) is too large") from None


@_function
def _zip(*lists: Value) -> Value:
    """Lists walked in step: zip([1, 2], [3, 4]) is [[1, 3], [2, 4]]; as long as the shortest."""
    if not lists:
        raise ExprError("AS304", "zip() needs at least one list")
    for v in lists:
        if not isinstance(v, tuple):
            raise ExprError("AS304", f"zip() needs lists, not {type_name(v)}")
    pairs = tuple(zip(*lists))
    limit_size(len(pairs) * (len(lists) + 1))  # each element is a new list of len(lists)
    return pairs


@_function
def _make_divisible(v: Value, divisor: Value = 8, min_value: Value = None, round_limit: Value = 0.9) -> Value:
    """v rounded to a multiple of divisor, at least min_value and round_limit * v (as timm/torchvision)."""
    v, d = _number(v, "make_divisible"), _whole(divisor, "make_divisible")
    if d < 1:
        raise ExprError("AS304", "make_divisible(): divisor must be at least 1")
    lowest = (None if min_value is None else _whole(min_value, "make_divisible")) or d  # timm: `or divisor`
    new_v = max(lowest, int(v + d / 2) // d * d)
    if new_v < _number(round_limit, "make_divisible") * v:
        new_v += d
    return bounded(new_v)


@_function
def _divisible(a: Value, b: Value) -> Value:
    """True when a is a multiple of b (a % b == 0)."""
    a, b = _number(a, "divisible"), _number(b, "divisible")
    if b == 0:
        raise ExprError("AS304", "divisible(): division by zero")
    return a % b == 0


SIGNATURES = {name: inspect.signature(fn) for name, fn in _FUNCTIONS.items()}
