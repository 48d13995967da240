"""Safe evaluation of the small arithmetic expressions allowed in spec values.

Specs come from strangers, so an expression is never given to Python's eval: it is parsed with
`ast.parse` and walked by a whitelist interpreter. Every construct outside the whitelist is AS302, and
the size of the source, of the tree and of every value computed is bounded (AS305) before costly work.

In a YAML value, "${ expr }" is an expression, "$name" is short for "${name}", a leading "$$" escapes a
literal "$" ("$$x" is the string "$x"), and any other string is a literal.
"""

from __future__ import annotations

import ast
from collections import ChainMap
from collections.abc import Callable, Mapping
import functools
import inspect
import math
import operator
import re
import warnings
from types import MappingProxyType
from typing import Any, NamedTuple

from archspec.errors import did_you_mean

Value = int | float | bool | str | None | tuple["Value", ...]  # lists are represented as tuples

MAX_SOURCE_CHARS = 1000
MAX_AST_NODES = 200
MAX_INT = 2**62
MAX_EXPONENT = 64
MAX_SEQUENCE_LEN = 10_000  # elements at every nesting level plus string characters
# Evaluation steps of one expression (Meter). Without comprehensions every expression was bounded by its
# size; a comprehension multiplies (nested ones multiply again), so the count itself is the bound. About
# a fifth of a second of evaluation; RegNet's generator takes a few hundred steps.
MAX_STEPS = 100_000

_SHORTHAND = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_NEWLINE = re.compile(r"\r\n|\r|\n")


class ExprError(Exception):
    """An expression problem; `column` is a 0-based character offset into the expression text."""

    def __init__(self, code: str, message: str, column: int | None = None):
        self.code, self.message, self.column = code, message, column
        super().__init__(f"{code}: {message}")


def _tname(v: object) -> str:
    """Type names as a spec author knows them (YAML lists and null)."""
    names = {bool: "bool", int: "int", float: "float", str: "str", tuple: "list", type(None): "null"}
    return names.get(type(v), type(v).__name__)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bounded(v: Value) -> Value:
    """Keep every number small and finite, so no later operation can become costly."""
    if _is_int(v) and abs(v) > MAX_INT:  # type: ignore[arg-type]
        raise ExprError("AS305", "an integer result exceeds the limit of 2**62")
    if isinstance(v, float) and not math.isfinite(v):
        raise ExprError("AS305", "a number result is too large (infinite)")
    return v


def _weight(v: Value) -> int:
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


def _limit_size(size: int) -> None:
    if size > MAX_SEQUENCE_LEN:
        raise ExprError("AS305", f"a list or string result would exceed {MAX_SEQUENCE_LEN} elements")


# Tuples already frozen and size-checked, by id (each kept alive here, so its id stays its own). A list
# read by name in every copy of a repeat is then checked once, not once per read: without this, a
# valid 59 KB spec reading a 10,000-element list 10,000 times did 10^8 steps of copying.
_CHECKED: dict[int, tuple[Value, ...]] = {}
_CHECKED_CAP = 256
_SMALL = 16  # shorter tuples are cheaper to check again than to remember


def _remember(v: Value) -> Value:
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
    _limit_size(_weight(frozen))
    return _remember(frozen)


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
        return _bounded(v)
    raise ExprError("AS304", f"a value of type {type(v).__name__} cannot be used in an expression")


# ---- the whitelisted functions -------------------------------------------------------------------
# Each validates its arguments itself, since FUNCTIONS is public and may be called from Python too.

_FUNCTIONS: dict[str, Callable[..., Value]] = {}
FUNCTIONS: Mapping[str, Callable[..., Value]] = MappingProxyType(_FUNCTIONS)


def _number(v: Value, fn: str) -> int | float:
    if isinstance(v, bool):
        raise ExprError("AS304", f"{fn}(): booleans are not numbers")
    if not _is_num(v):
        raise ExprError("AS304", f"{fn}() needs a number, not {_tname(v)}")
    return v  # type: ignore[return-value]


def _whole(v: Value, fn: str) -> int:
    if not _is_int(v):
        raise ExprError("AS304", f"{fn}() needs a whole number, not {_tname(v)}")
    return v  # type: ignore[return-value]


def _sqrt(x: float) -> float:
    if x < 0:
        raise ExprError("AS304", "sqrt() of a negative number")
    return math.sqrt(x)


def _one_number(name: str, op: Callable[[float], Value], doc: str) -> Callable[[Value], Value]:
    def fn(x: Value) -> Value:
        return _bounded(op(_number(x, name)))  # ceil(1e300) is a huge int: bounded like any result
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
    _one_value("is_int", _is_int, "True for a whole number (booleans are not numbers)."),
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
        return _bounded(round(_number(x, "round")))
    if abs(_whole(ndigits, "round")) > MAX_EXPONENT:  # round(5, -10**9) would compute 10**10**9
        raise ExprError("AS305", f"round(): ndigits must be between -{MAX_EXPONENT} and {MAX_EXPONENT}")
    return _bounded(round(_number(x, "round"), ndigits))  # type: ignore[arg-type]


def _extreme(name: str, pick: Callable[..., Value], args: tuple[Value, ...]) -> Value:
    items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    if not items:
        raise ExprError("AS304", f"{name}() of an empty list")
    if all(_is_num(v) for v in items) or all(isinstance(v, str) for v in items):
        return pick(items)
    kinds = ", ".join(sorted({_tname(v) for v in items}))
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
        raise ExprError("AS304", f"sum() needs a list, not {_tname(xs)}")
    return _bounded(sum(_number(x, "sum") for x in xs))


@_function
def _len(x: Value) -> Value:
    """The number of elements of a list or characters of a string."""
    if not isinstance(x, (tuple, str)):
        raise ExprError("AS304", f"len() needs a list or a string, not {_tname(x)}")
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
        _limit_size(len(r))  # O(1): the tuple is built only once it is known to be small
    except OverflowError:  # longer than sys.maxsize
        _limit_size(MAX_SEQUENCE_LEN + 1)
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
        return _bounded(math.exp(_number(x, "exp")))
    except OverflowError:
        raise ExprError("AS305", f"exp({x}) is too large") from None


@_function
def _zip(*lists: Value) -> Value:
    """Lists walked in step: zip([1, 2], [3, 4]) is [[1, 3], [2, 4]]; as long as the shortest."""
    if not lists:
        raise ExprError("AS304", "zip() needs at least one list")
    for v in lists:
        if not isinstance(v, tuple):
            raise ExprError("AS304", f"zip() needs lists, not {_tname(v)}")
    pairs = tuple(zip(*lists))
    _limit_size(len(pairs) * (len(lists) + 1))  # each element is a new list of len(lists)
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
    return _bounded(new_v)


@_function
def _divisible(a: Value, b: Value) -> Value:
    """True when a is a multiple of b (a % b == 0)."""
    a, b = _number(a, "divisible"), _number(b, "divisible")
    if b == 0:
        raise ExprError("AS304", "divisible(): division by zero")
    return a % b == 0


_SIGNATURES = {name: inspect.signature(fn) for name, fn in _FUNCTIONS.items()}

# ---- parsing and the static whitelist ------------------------------------------------------------

_FORBIDDEN: dict[type, str] = {
    ast.Attribute: "attribute access (x.y) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.SetComp: "only list comprehensions [... for x in xs] are allowed",
    ast.DictComp: "only list comprehensions [... for x in xs] are allowed",
    ast.GeneratorExp: "only list comprehensions are allowed: write [... for x in xs], in brackets",
    ast.JoinedStr: "f-strings are not allowed", ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "the walrus operator (:=) is not allowed",
    ast.Dict: "dict/set literals are not allowed", ast.Set: "dict/set literals are not allowed",
    ast.Starred: "* unpacking is not allowed",
}
_ALLOWED = (ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
            ast.Tuple, ast.List, ast.Subscript, ast.Slice, ast.Call, ast.ListComp)
_BAD_OPS = {ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
            ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not"}


class _Parsed(NamedTuple):
    body: ast.expr
    text: str  # the source without leading whitespace, which ast.parse rejects as an indent
    shift: int  # how much leading whitespace was removed, to report columns in the caller's text

    def column(self, lineno: int, col: int, in_bytes: bool = True) -> int:
        starts = [0] + [m.end() for m in _NEWLINE.finditer(self.text)]
        start = starts[max(1, min(lineno, len(starts))) - 1]
        if in_bytes:  # AST col_offset counts UTF-8 bytes; columns count characters
            col = len(self.text[start:].encode()[:col].decode("utf-8", "ignore"))
        return self.shift + start + col


def _reject(node: ast.AST, slices: set[int]) -> str | None:
    """Why node is not allowed, or None. Checked for the whole tree, untaken branches included."""
    if type(node) in _FORBIDDEN:
        return _FORBIDDEN[type(node)]
    if not isinstance(node, _ALLOWED):
        return f"{type(node).__name__.lower()} is not allowed"
    ops = [getattr(node, "op", None), *getattr(node, "ops", [])]
    for op in ops:
        if type(op) in _BAD_OPS:
            hint = "; use == or !=" if isinstance(op, (ast.Is, ast.IsNot)) else ""
            return f"the operator '{_BAD_OPS[type(op)]}' is not allowed{hint}"
    if isinstance(node, ast.Constant) and type(node.value) not in (int, float, str, bool, type(None)):
        return f"{_tname(node.value)} literals are not allowed"
    if isinstance(node, ast.Slice) and id(node) not in slices:
        return "multi-dimensional indexing (a[i:j, k]) is not allowed"
    if isinstance(node, ast.ListComp):
        for gen in node.generators:
            if gen.is_async:
                return "async comprehensions are not allowed"
            targets = gen.target.elts if isinstance(gen.target, ast.Tuple) else [gen.target]
            if not all(isinstance(t, ast.Name) for t in targets):
                return "a comprehension binds names only: for x in xs, or for a, b in zip(xs, ys)"
    if isinstance(node, ast.Call):
        if node.keywords:
            return "keyword arguments are not allowed; pass arguments by position"
        if not isinstance(node.func, ast.Name):
            return "only built-in functions can be called, by name (as in max(a, b))"
    return None


@functools.lru_cache(maxsize=1024)  # specs evaluate the same few expressions many times (repeat:)
def _parse(source: str) -> _Parsed:
    # Length first: the parser is the costly step, and deep nesting could exhaust its stack.
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprError("AS305", f"the expression has {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
    text = source.lstrip()
    parsed = _Parsed(ast.expr(), text, len(source) - len(text))
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and kin are Python's noise, not ours
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        col = None  # offset < 1 means "at the end of the input" (e.g. "1 +")
        if e.lineno is not None and e.offset is not None:
            col = parsed.column(e.lineno, e.offset - 1, in_bytes=False) if e.offset >= 1 else len(source)
        raise ExprError("AS301", f"the expression does not parse: {e.msg}", col) from None
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes; nesting the parser cannot take
        raise ExprError("AS301", f"the expression does not parse: {e}") from None
    nodes = list(ast.walk(tree.body))
    if sum(isinstance(n, ast.expr) for n in nodes) > MAX_AST_NODES:
        raise ExprError("AS305", f"the expression has more than {MAX_AST_NODES} parts")
    slices = {id(n.slice) for n in nodes if isinstance(n, ast.Subscript)}
    for node in nodes:
        if isinstance(node, ast.expr) and (why := _reject(node, slices)):
            col = parsed.column(node.lineno, node.col_offset) if hasattr(node, "lineno") else None
            raise ExprError("AS302", why, col)
    return parsed._replace(body=tree.body)


# ---- evaluation ----------------------------------------------------------------------------------

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
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
}


def _binop(op: ast.operator, a: Value, b: Value) -> Value:
    template, fn = _ARITH[type(op)]
    if isinstance(a, bool) or isinstance(b, bool):  # YAML specs must not use booleans as numbers
        raise ExprError("AS304", "booleans are not numbers")
    if _is_num(a) and _is_num(b):
        if isinstance(op, ast.Pow) and _is_int(b) and abs(b) > MAX_EXPONENT:  # type: ignore[arg-type]
            raise ExprError("AS305", f"the exponent {b} is outside -{MAX_EXPONENT}..{MAX_EXPONENT}")
        try:
            result = fn(a, b)
        except ZeroDivisionError:
            raise ExprError("AS304", "division by zero") from None
        except OverflowError:
            raise ExprError("AS305", "a number result is too large") from None
        if isinstance(result, complex):
            raise ExprError("AS304", "a negative number cannot be raised to a fractional power")
        return _bounded(result)
    if isinstance(op, ast.Add) and type(a) is type(b) and isinstance(a, (str, tuple)):
        _limit_size(_weight(a) + _weight(b))
        return a + b  # type: ignore[operator]
    seq, n = (a, b) if _is_int(b) else (b, a)
    if isinstance(op, ast.Mult) and isinstance(seq, (str, tuple)) and _is_int(n):
        count = max(int(n), 0)  # type: ignore[arg-type]  # _is_int(n) holds
        _limit_size(_weight(seq) * count)  # before 'a' * 10**9 allocates
        return seq * count
    raise ExprError("AS304", template.format(a=_tname(a), b=_tname(b)))


def _compare(op: ast.cmpop, a: Value, b: Value) -> bool:
    if isinstance(op, (ast.Eq, ast.NotEq)):
        return (a == b) == isinstance(op, ast.Eq)
    if isinstance(op, (ast.In, ast.NotIn)):
        if not (isinstance(b, tuple) or (isinstance(b, str) and isinstance(a, str))):
            raise ExprError("AS304", f"cannot look for {_tname(a)} in {_tname(b)}; 'in' needs a list or a string")
        return (a in b) == isinstance(op, ast.In)
    sym, fn = _ORDER[type(op)]
    if isinstance(a, bool) or isinstance(b, bool):
        raise ExprError("AS304", "booleans are not numbers")
    if (_is_num(a) and _is_num(b)) or type(a) is type(b) is str or type(a) is type(b) is tuple:
        try:
            return fn(a, b)
        except TypeError:  # lists whose elements do not compare
            pass
    raise ExprError("AS304", f"cannot compare {_tname(a)} {sym} {_tname(b)}")


_MAKERS = (ast.BinOp, ast.Call, ast.List, ast.Tuple, ast.Subscript, ast.ListComp)  # parts whose list or string result is new


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
        return ExprError("AS305", f"evaluating the expression takes more than {self.limit:,} steps; "
                         "check the ranges of its comprehensions")


class _Evaluator:
    def __init__(self, parsed: _Parsed, scope: Mapping[str, Value], meter: Meter):
        self.parsed, self.scope, self.meter = parsed, scope, meter

    def eval(self, node: ast.expr) -> Value:
        self.meter.steps += 1
        try:
            if self.meter.steps > self.meter.limit:
                raise self.meter.over()
            value = self._eval(node)
            if (type(value) is tuple or type(value) is str) and isinstance(node, _MAKERS) and (
                    not isinstance(node, ast.Subscript) or isinstance(node.slice, ast.Slice)):
                self.meter.steps += len(value) >> 3  # made or copied: slices, concatenation, repetition, displays
            return value
        except ExprError as e:
            if e.column is None:  # the innermost node that failed gives the column
                e.column = self.parsed.column(node.lineno, node.col_offset)
            raise

    def _eval(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            return _bounded(node.value)  # type: ignore[arg-type]  # _reject allowed only Value constants; 1e999 parses as inf
        if isinstance(node, ast.Name):
            return self._lookup(node.id)
        if isinstance(node, ast.BinOp):
            return _binop(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not v
            if not _is_num(v):
                raise ExprError("AS304", "booleans are not numbers" if isinstance(v, bool)
                                else f"unary minus/plus needs a number, not {_tname(v)}")
            return _bounded(-v if isinstance(node.op, ast.USub) else v)  # type: ignore[operator]
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
            _limit_size(_weight(items))
            return _remember(items)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.ListComp):
            return self._list_comprehension(node)
        raise ExprError("AS302", f"{type(node).__name__.lower()} is not allowed")  # _parse rejects these first

    def _list_comprehension(self, node: ast.ListComp) -> Value:
        """[elt for a in xs if c for b in ys ...]: Python's semantics (the first list is read in the
        enclosing scope, the loop names are local to the comprehension), every turn charged to the Meter."""
        result: list[Value] = []
        weight = [0]
        outer = self.scope
        local: dict[str, Value] = {}
        self.scope = ChainMap(local, outer)  # type: ignore[arg-type]

        def loop(k: int) -> None:
            if k == len(node.generators):
                value = self.eval(node.elt)
                weight[0] += 1 + _weight(value)
                _limit_size(weight[0])  # as it grows: the list is never built past the limit
                result.append(value)
                return
            gen = node.generators[k]
            items = self.eval(gen.iter)
            if not isinstance(items, (tuple, str)):
                raise ExprError("AS304", f"a comprehension loops over a list or a string, not {_tname(items)}")
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
        return _remember(tuple(result))

    def _bind(self, target: ast.expr, item: Value, local: dict[str, Value]) -> None:
        if isinstance(target, ast.Name):
            local[target.id] = item
            return
        names = target.elts  # type: ignore[attr-defined]  # _reject allows a name or a tuple of names
        if not isinstance(item, tuple) or len(item) != len(names):
            got = f"a list of {len(item)}" if isinstance(item, tuple) else _tname(item)
            raise ExprError("AS304", f"cannot unpack {got} into {len(names)} names")
        for name, value in zip(names, item):
            local[name.id] = value

    def _lookup(self, name: str) -> Value:
        if name in self.scope:
            return checked(self.scope[name])
        if name in FUNCTIONS:
            raise ExprError("AS302", f"'{name}' is a function; call it, as in {name}(...)")
        raise ExprError("AS303", f"unknown name '{name}'." + did_you_mean(name, [*self.scope, *FUNCTIONS]))

    def _subscript(self, node: ast.Subscript) -> Value:
        seq = self.eval(node.value)
        if not isinstance(seq, (tuple, str)):
            raise ExprError("AS304", f"cannot index {_tname(seq)}; only lists and strings can be indexed")
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.eval(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if any(p is not None and not _is_int(p) for p in parts):
                raise ExprError("AS304", "slice bounds must be whole numbers")
            if parts[2] == 0:
                raise ExprError("AS304", "slice step cannot be zero")
            return seq[slice(*parts)]  # type: ignore[arg-type]  # ints or None, checked above
        index = self.eval(node.slice)
        if not _is_int(index):
            raise ExprError("AS304", f"an index must be a whole number, not {_tname(index)}")
        if not -len(seq) <= index < len(seq):  # type: ignore[operator]
            kind = "list" if isinstance(seq, tuple) else "string"
            raise ExprError("AS304", f"index {index} out of range for a {kind} of {len(seq)}")
        return seq[index]  # type: ignore[index]

    def _call(self, node: ast.Call) -> Value:
        name = node.func.id  # type: ignore[attr-defined]  # _parse allows only calls of names
        fn = FUNCTIONS.get(name)
        if fn is None:
            if name in self.scope:
                raise ExprError("AS304", f"'{name}' is a value, not a function")
            raise ExprError("AS303", f"unknown function '{name}'." + did_you_mean(name, FUNCTIONS))
        args = [self.eval(a) for a in node.args]
        self.meter.steps += sum(len(a) for a in args if isinstance(a, (tuple, str)))  # sum/min/max walk their list
        try:
            _SIGNATURES[name].bind(*args)
        except TypeError as e:
            raise ExprError("AS304", f"{name}(): {e}") from None
        return _bounded(fn(*args))


def is_expression(value: object) -> bool:
    """True for "${...}" and "$name" strings ("$$..." is an escaped literal)."""
    return isinstance(value, str) and (value.startswith("${") or _SHORTHAND.fullmatch(value) is not None)


def expression_source(value: object) -> str | None:
    """The expression text of an expression string ("${ a+1 }" -> " a+1 ", "$a" -> "a"), else None."""
    if not is_expression(value):
        return None
    assert isinstance(value, str)
    if not value.startswith("${"):
        return value[1:]
    if len(value) < 3 or not value.endswith("}"):  # "${a" is a typo, not a literal string
        raise ExprError("AS301", "an expression that starts with '${' must end with '}'", len(value))
    return value[2:-1]


def evaluate(source: str, scope: Mapping[str, Value], meter: Meter | None = None) -> Value:
    """Evaluate the bare expression text (without "${ }") over scope; raises only ExprError."""
    parsed = _parse(source)
    try:
        return _Evaluator(parsed, scope, meter or Meter()).eval(parsed.body)
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


def names_used(source: str) -> set[str]:
    """The free names of an expression: scope names it reads (called built-in functions are not names,
    nor are the loop names of a comprehension inside it)."""
    return _free_names(_parse(source).body, frozenset())


def _free_names(node: ast.AST, bound: frozenset[str]) -> set[str]:
    if isinstance(node, ast.Name):
        return set() if node.id in bound else {node.id}
    if isinstance(node, ast.ListComp):
        free: set[str] = set()
        for gen in node.generators:  # the first list is read outside, later ones see earlier loop names
            free |= _free_names(gen.iter, bound)
            bound = bound | {t.id for t in ast.walk(gen.target) if isinstance(t, ast.Name)}
            for cond in gen.ifs:
                free |= _free_names(cond, bound)
        return free | _free_names(node.elt, bound)
    names: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func and isinstance(child, ast.Name) and child.id in FUNCTIONS:
            continue
        names |= _free_names(child, bound)
    return names
