"""Walking a checked tree over a scope: Python's semantics for the whitelisted constructs, with every
step counted (Meter) and every intermediate value bounded."""

from __future__ import annotations

import ast
from collections import ChainMap
from collections.abc import Callable, Mapping
import operator
import threading
from typing import Any

from archspec.errors import did_you_mean
from archspec.expr.errors import ExprError
from archspec.expr.functions import FUNCTIONS, SIGNATURES
from archspec.expr.limits import MAX_EXPONENT, MAX_STEPS
from archspec.expr.parse import Parsed, expression_source, free_names, parse
from archspec.expr.values import Value, bounded, checked, is_int, is_num, limit_size, remember, type_name, weight_of

_ARITH: dict[type, tuple[str, Callable[[Value, Value], Value]]] = {
    ast.Add: ("cannot add {a} and {b}", operator.add),
    ast.Sub: ("cannot subtract {b} from {a}", operator.sub),
    ast.Mult: ("cannot multiply {a} by {b}", operator.mul),
    ast.Div: ("cannot divide {a} by {b}", operator.truediv),
    ast.FloorDiv: ("cannot floor-divide {a} by {b}", operator.floordiv),
    ast.Mod: ("cannot take {a} modulo {b}", operator.mod),  # numbers only: str % x is formatting
    ast.Pow: ("cannot raise {a} to the power {b}", operator.pow),
}
_ORDER: dict[type, tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}


_NUMBERS = (int, float)  # exact types: a bool is not a number here


def _binop(op: ast.operator, a: Value, b: Value) -> Value:
    template, fn = _ARITH[type(op)]
    # The common case first: two numbers, no power (whose exponent and complex results are checked below).
    if type(a) in _NUMBERS and type(b) in _NUMBERS and type(op) is not ast.Pow:
        try:
            return bounded(fn(a, b))
        except ZeroDivisionError:
            raise ExprError("AS304", "division by zero") from None
        except OverflowError:
            raise ExprError("AS305", "a number result is too large") from None
    if isinstance(a, bool) or isinstance(b, bool):  # YAML specs must not use booleans as numbers
        raise ExprError("AS304", "booleans are not numbers")
    if is_num(a) and is_num(b):
        if isinstance(op, ast.Pow) and is_int(b) and abs(b) > MAX_EXPONENT:  # type: ignore[arg-type]
            raise ExprError("AS305", f"the exponent {b} is outside -{MAX_EXPONENT}..{MAX_EXPONENT}")
        try:
            result = fn(a, b)
        except ZeroDivisionError:
            raise ExprError("AS304", "division by zero") from None
        except OverflowError:
            raise ExprError("AS305", "a number result is too large") from None
        if isinstance(result, complex):
            raise ExprError("AS304", "a negative number cannot be raised to a fractional power")
        return bounded(result)
    if isinstance(op, ast.Add) and type(a) is type(b) and isinstance(a, (str, tuple)):
        limit_size(weight_of(a) + weight_of(b))
        return a + b  # type: ignore[operator]
    seq, n = (a, b) if is_int(b) else (b, a)
    if isinstance(op, ast.Mult) and isinstance(seq, (str, tuple)) and is_int(n):
        count = max(int(n), 0)  # type: ignore[arg-type]  # is_int(n) holds
        limit_size(weight_of(seq) * count)  # before 'a' * 10**9 allocates
        return seq * count
    raise ExprError("AS304", template.format(a=type_name(a), b=type_name(b)))


def _compare(op: ast.cmpop, a: Value, b: Value) -> bool:
    if isinstance(op, (ast.Eq, ast.NotEq)):
        return (a == b) == isinstance(op, ast.Eq)
    if isinstance(op, (ast.In, ast.NotIn)):
        if not (isinstance(b, tuple) or (isinstance(b, str) and isinstance(a, str))):
            raise ExprError("AS304", f"cannot look for {type_name(a)} in {type_name(b)}; 'in' needs a list or a string")
        return (a in b) == isinstance(op, ast.In)
    sym, fn = _ORDER[type(op)]
    if isinstance(a, bool) or isinstance(b, bool):
        raise ExprError("AS304", "booleans are not numbers")
    if (is_num(a) and is_num(b)) or type(a) is type(b) is str or type(a) is type(b) is tuple:
        try:
            return fn(a, b)
        except TypeError:  # lists whose elements do not compare
            pass
    raise ExprError("AS304", f"cannot compare {type_name(a)} {sym} {type_name(b)}")


_MAKERS = (
    ast.BinOp,
    ast.Call,
    ast.List,
    ast.Tuple,
    ast.Subscript,
    ast.ListComp,
)  # parts whose list or string result is new


class Meter:
    """Counts evaluation steps: one per expression part, plus the length of every list or string that an
    operation walks (sum, min, max, in, comparisons, slices, concatenation). A caller that evaluates many
    expressions (lowering) charges these steps to its work budget, so a short expression over a long list,
    evaluated in every copy of a repeat, is paid for. Every turn of a comprehension's loop is charged
    too, and evaluation stops with AS305 once `limit` steps are spent, so nested comprehensions over long
    ranges end in a located error, not a hang."""

    def __init__(self, limit: int = MAX_STEPS) -> None:
        self.steps = 0
        self.limit = limit

    def over(self) -> ExprError:
        return ExprError(
            "AS305",
            f"evaluating the expression takes more than {self.limit:,} steps; check the ranges of its comprehensions",
        )


class _Evaluator:
    def __init__(self, parsed: Parsed, scope: Mapping[str, Value], meter: Meter):
        self.parsed, self.scope, self.meter = parsed, scope, meter
        self.root = scope  # the caller's names, below every comprehension's
        self.locals: list[dict[str, Value]] = []  # the open comprehensions' loop names, innermost first

    def eval(self, node: ast.expr) -> Value:
        self.meter.steps += 1
        try:
            if self.meter.steps > self.meter.limit:
                raise self.meter.over()
            value = self._eval(node)
            if (
                (type(value) is tuple or type(value) is str)
                and isinstance(node, _MAKERS)
                and (not isinstance(node, ast.Subscript) or isinstance(node.slice, ast.Slice))
            ):
                self.meter.steps += len(value) >> 3  # made or copied: slices, concatenation, repetition, displays
            return value
        except ExprError as e:
            if e.column is None:  # the innermost node that failed gives the column
                e.column = self.parsed.column(node.lineno, node.col_offset)
            raise

    def _eval(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            return bounded(node.value)  # type: ignore[arg-type]  # _reject allowed only Value constants; 1e999 parses as inf
        if isinstance(node, ast.Name):
            return self._lookup(node.id)
        if isinstance(node, ast.BinOp):
            return _binop(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not v
            if not is_num(v):
                raise ExprError(
                    "AS304",
                    "booleans are not numbers"
                    if isinstance(v, bool)
                    else f"unary minus/plus needs a number, not {type_name(v)}",
                )
            return bounded(-v if isinstance(node.op, ast.USub) else v)  # type: ignore[operator]
        if isinstance(node, ast.BoolOp):  # Python semantics: short-circuit, the deciding operand is the value
            for sub in node.values[:-1]:
                v = self.eval(sub)
                if bool(v) == isinstance(node.op, ast.Or):
                    return v
            return self.eval(node.values[-1])
        if isinstance(node, ast.Compare):  # chained: a < b < c is a < b and b < c, b evaluated once
            left = self.eval(node.left)
            for op, sub in zip(node.ops, node.comparators):
                right = self.eval(sub)
                if isinstance(right, (tuple, str)):  # `in` and comparisons walk it
                    self.meter.steps += len(right)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):  # only the taken branch is evaluated
            return self.eval(node.body if self.eval(node.test) else node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = tuple(self.eval(e) for e in node.elts)
            limit_size(weight_of(items))
            return remember(items)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.ListComp):
            return self._list_comprehension(node)
        raise ExprError("AS302", f"{type(node).__name__.lower()} is not allowed")  # parse rejects these first

    def _list_comprehension(self, node: ast.ListComp) -> Value:
        """[elt for a in xs if c for b in ys ...]: Python's semantics (the first list is read in the
        enclosing scope, the loop names are local to the comprehension), every turn charged to the Meter."""
        result: list[Value] = []
        weight = [0]
        outer = self.scope
        local: dict[str, Value] = {}
        self.scope = ChainMap(local, outer)  # type: ignore[arg-type]
        self.locals.insert(0, local)

        def loop(k: int) -> None:
            if k == len(node.generators):
                value = self.eval(node.elt)
                weight[0] += 1 + weight_of(value)
                limit_size(weight[0])  # as it grows: the list is never built past the limit
                result.append(value)
                return
            gen = node.generators[k]
            items = self.eval(gen.iter)
            if not isinstance(items, (tuple, str)):
                raise ExprError("AS304", f"a comprehension loops over a list or a string, not {type_name(items)}")
            for item in items:
                self.meter.steps += 1
                if self.meter.steps > self.meter.limit:
                    raise self.meter.over()
                self._bind(gen.target, item, local)
                if all(self.eval(cond) for cond in gen.ifs):
                    loop(k + 1)

        try:
            loop(0)
        finally:
            self.scope = outer
            self.locals.pop(0)
        return remember(tuple(result))

    def _bind(self, target: ast.expr, item: Value, local: dict[str, Value]) -> None:
        if isinstance(target, ast.Name):
            local[target.id] = item
            return
        names = target.elts  # type: ignore[attr-defined]  # _reject allows a name or a tuple of names
        if not isinstance(item, tuple) or len(item) != len(names):
            got = f"a list of {len(item)}" if isinstance(item, tuple) else type_name(item)
            raise ExprError("AS304", f"cannot unpack {got} into {len(names)} names")
        for name, value in zip(names, item):
            local[name.id] = value

    def _lookup(self, name: str) -> Value:
        # Loop names first, without ChainMap's walk: each holds an element of a list or string already
        # checked when it was made or read, so it is not checked again.
        for local in self.locals:
            if name in local:
                return local[name]
        if name in self.root:
            return checked(self.root[name])
        if name in FUNCTIONS:
            raise ExprError("AS302", f"'{name}' is a function; call it, as in {name}(...)")
        raise ExprError("AS303", f"unknown name '{name}'." + did_you_mean(name, [*self.scope, *FUNCTIONS]))

    def _subscript(self, node: ast.Subscript) -> Value:
        seq = self.eval(node.value)
        if not isinstance(seq, (tuple, str)):
            raise ExprError("AS304", f"cannot index {type_name(seq)}; only lists and strings can be indexed")
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.eval(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if any(p is not None and not is_int(p) for p in parts):
                raise ExprError("AS304", "slice bounds must be whole numbers")
            if parts[2] == 0:
                raise ExprError("AS304", "slice step cannot be zero")
            return seq[slice(*parts)]  # type: ignore[arg-type]  # ints or None, checked above
        index = self.eval(node.slice)
        if not is_int(index):
            raise ExprError("AS304", f"an index must be a whole number, not {type_name(index)}")
        if not -len(seq) <= index < len(seq):  # type: ignore[operator]
            kind = "list" if isinstance(seq, tuple) else "string"
            raise ExprError("AS304", f"index {index} out of range for a {kind} of {len(seq)}")
        return seq[index]  # type: ignore[index]

    def _call(self, node: ast.Call) -> Value:
        name = node.func.id  # type: ignore[attr-defined]  # parse allows only calls of names
        fn = FUNCTIONS.get(name)
        if fn is None:
            if name in self.scope:
                raise ExprError("AS304", f"'{name}' is a value, not a function")
            raise ExprError("AS303", f"unknown function '{name}'." + did_you_mean(name, FUNCTIONS))
        args = [self.eval(a) for a in node.args]
        self.meter.steps += sum(len(a) for a in args if isinstance(a, (tuple, str)))  # sum/min/max walk their list
        try:
            SIGNATURES[name].bind(*args)
        except TypeError as e:
            raise ExprError("AS304", f"{name}(): {e}") from None
        return bounded(fn(*args))


# ---- remembered results ----------------------------------------------------------------------------
# An expression's value depends only on the values of the names it reads, and lowering evaluates the same
# expressions over the same values again and again: a block's `vars:` in every copy of a repeat (Swin's
# window tables: thousands of comprehension turns per block). A result is remembered with the steps it
# took, and a repeat is charged those steps (so the work budget, and any AS305, are exactly as without the
# memo); only successful evaluations are remembered. Keys hold scalars with their type (1, 1.0 and True
# are equal in Python but not here), short tuples by value and long ones by identity: a tuple cannot
# change, and the entry keeps it alive, so its id is not reused while the entry exists.
_MEMO: dict[tuple[Any, ...], tuple[Value, int, tuple[tuple[Value, ...], ...]]] = {}
_MEMO_ENTRIES = 4096
_MEMO_WEIGHT = 1 << 20  # list elements and characters held by remembered results, in all
_memo_weight = [0]
_memo_lock = threading.Lock()
_SHORT = 16  # tuples up to this length are keyed by value, longer ones by identity
_KEY_DEPTH = 4
_EQUAL_IS_SAME = frozenset({int, str, type(None)})  # unlike floats (-0.0) and bools (True == 1)


def _key_of(v: object, pinned: list[tuple[Value, ...]], depth: int = 0) -> object:
    """A hashable stand-in for `v` that tells apart every two values an expression could tell apart;
    None where there is none (a value that is not an expression value, or nested too deeply)."""
    kind = type(v)
    if kind is int or kind is str or kind is bool or v is None:
        return (kind, v)
    if kind is float and isinstance(v, float):
        return (kind, v.hex())  # -0.0 and 0.0 compare equal but are not the same value
    if isinstance(v, tuple) and kind is tuple and depth < _KEY_DEPTH:
        if len(v) > _SHORT:
            pinned.append(v)
            return (id, id(v))
        if set(map(type, v)) <= _EQUAL_IS_SAME:  # a shape: equal tuples of these are the same value
            return (kind, v)
        parts = tuple(_key_of(e, pinned, depth + 1) for e in v)
        return None if None in parts else (kind, parts)
    return None


def _memo_key(source: str, scope: Mapping[str, Value], pinned: list[tuple[Value, ...]]) -> tuple[Any, ...] | None:
    key: list[Any] = [source]
    for name in free_names(source):
        if name not in scope:
            return None  # an error follows, which is not remembered
        part = _key_of(scope[name], pinned)
        if part is None:
            return None
        key.append(part)
    return tuple(key)


def _remember_result(key: tuple[Any, ...], value: Value, steps: int, pinned: list[tuple[Value, ...]]) -> None:
    size = weight_of(value) + sum(len(p) for p in pinned)
    if size > _MEMO_WEIGHT // 8:
        return
    with _memo_lock:
        while _MEMO and (len(_MEMO) >= _MEMO_ENTRIES or _memo_weight[0] + size > _MEMO_WEIGHT):
            oldest = next(iter(_MEMO))
            old_value, _, old_pinned = _MEMO.pop(oldest)
            _memo_weight[0] -= weight_of(old_value) + sum(len(p) for p in old_pinned)
        _MEMO[key] = (value, steps, tuple(pinned))
        _memo_weight[0] += size


def evaluate(source: str, scope: Mapping[str, Value], meter: Meter | None = None) -> Value:
    """Evaluate the bare expression text (without "${ }") over scope; raises only ExprError."""
    parsed = parse(source)
    meter = meter or Meter()
    pinned: list[tuple[Value, ...]] = []
    key = _memo_key(source, scope, pinned)
    if key is not None:
        hit = _MEMO.get(key)
        # Over the limit, evaluate again: the error then names the part where the steps ran out.
        if hit is not None and meter.steps + hit[1] <= meter.limit:
            meter.steps += hit[1]
            return remember(hit[0])
    start = meter.steps
    try:
        value = _Evaluator(parsed, scope, meter).eval(parsed.body)
        if key is not None:
            _remember_result(key, value, meter.steps - start, pinned)
        return value
    except ExprError:
        raise
    except RecursionError:
        raise ExprError("AS305", "the expression nests too deeply") from None
    except Exception as e:  # a safety net: strangers' specs must never crash the compiler
        raise ExprError("AS304", f"the expression cannot be evaluated: {e}") from None


def resolve(value: object, scope: Mapping[str, Value], meter: Meter | None = None) -> object:
    """Evaluate expression strings inside value: lists become tuples, dicts keep their keys.

    A column in a raised ExprError counts from the start of the string value (the "${" included).
    """
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        source = expression_source(value)
        if source is None:
            return value
        try:
            return evaluate(source, scope, meter)
        except ExprError as e:
            offset = len(value) - len(source) - (1 if value.startswith("${") else 0)
            raise ExprError(e.code, e.message, None if e.column is None else e.column + offset) from None
    if isinstance(value, (list, tuple)):
        return tuple(resolve(v, scope, meter) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, scope, meter) for k, v in value.items()}
    return value
