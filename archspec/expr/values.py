"""What an expression value is, and how large it may be: scope values are frozen (lists become tuples)
and checked once; every number computed stays small and finite, every list and string short."""

from __future__ import annotations

import math

from archspec.expr.errors import ExprError
from archspec.expr.limits import MAX_INT, MAX_SEQUENCE_LEN

Value = int | float | bool | str | None | tuple["Value", ...]  # lists are represented as tuples


def type_name(v: object) -> str:
    """Type names as a spec author knows them (YAML lists and null)."""
    names = {bool: "bool", int: "int", float: "float", str: "str", tuple: "list", type(None): "null"}
    return names.get(type(v), type(v).__name__)


def is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def bounded(v: Value) -> Value:
    """Keep every number small and finite, so no later operation can become costly."""
    if is_int(v) and abs(v) > MAX_INT:  # type: ignore[arg-type]
        raise ExprError("AS305", "an integer result exceeds the limit of 2**62")
    if isinstance(v, float) and not math.isfinite(v):
        raise ExprError("AS305", "a number result is too large (infinite)")
    return v


def weight_of(v: Value) -> int:
    """List elements counted at every nesting level plus string characters; stops once over the limit.

    Nested elements count too: otherwise ((x,)*10**4,)*10**4 would be cheap to build but costly to compare.
    """
    total, stack = 0, [v]
    while stack and total <= MAX_SEQUENCE_LEN:
        x = stack.pop()
        total += len(x) if isinstance(x, (str, tuple)) else 0
        if isinstance(x, tuple) and total <= MAX_SEQUENCE_LEN:
            stack.extend(e for e in x if isinstance(e, (str, tuple)))
    return total


def limit_size(size: int) -> None:
    if size > MAX_SEQUENCE_LEN:
        raise ExprError("AS305", f"a list or string result would exceed {MAX_SEQUENCE_LEN} elements")


# Tuples already frozen and size-checked, by id (each kept alive here, so its id stays its own). A list
# read by name in every copy of a repeat is then checked once, not once per read: without this, a
# valid 59 KB spec reading a 10,000-element list 10,000 times did 10^8 steps of copying.
_CHECKED: dict[int, tuple[Value, ...]] = {}
_CHECKED_CAP = 256
_SMALL = 16  # shorter tuples are cheaper to check again than to remember


def remember(v: Value) -> Value:
    if type(v) is tuple and len(v) > _SMALL:
        if len(_CHECKED) >= _CHECKED_CAP:
            del _CHECKED[next(iter(_CHECKED))]
        _CHECKED[id(v)] = v
    return v


def checked(v: object) -> Value:
    """`v` as a Value: frozen (lists become tuples), numbers bounded, size limited. O(1) for a tuple
    that this module produced or checked recently."""
    kind = type(v)
    if kind is int:  # the common cases first: a lookup happens for every name in every expression
        if -MAX_INT <= v <= MAX_INT:  # type: ignore[operator]
            return v  # type: ignore[return-value]
    elif kind is bool or v is None:
        return v  # type: ignore[return-value]
    elif kind is str:
        if len(v) <= MAX_SEQUENCE_LEN:  # type: ignore[arg-type]
            return v  # type: ignore[return-value]
    elif kind is tuple and _CHECKED.get(id(v)) is v:
        return v
    frozen = _freeze(v)
    limit_size(weight_of(frozen))
    return remember(frozen)


def is_checked(v: object) -> bool:
    """Whether `v` is a tuple this module has frozen and size-checked (and still remembers)."""
    return type(v) is tuple and _CHECKED.get(id(v)) is v


def _freeze(v: object) -> Value:
    """A scope value as a checked Value (lists become tuples)."""
    if type(v) is tuple and _CHECKED.get(id(v)) is v:
        return v
    if isinstance(v, (list, tuple)):
        items = tuple(_freeze(x) for x in v)
        # The same object when nothing changed, so that `checked` can remember the caller's tuple.
        return v if type(v) is tuple and all(a is b for a, b in zip(items, v)) else items
    if v is None or isinstance(v, (bool, int, float, str)):
        return bounded(v)
    raise ExprError("AS304", f"a value of type {type(v).__name__} cannot be used in an expression")
