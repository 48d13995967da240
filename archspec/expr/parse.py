"""Expression text -> a checked syntax tree. `ast.parse` reads the text; a whitelist then rejects every
construct outside the language (AS302) and trees past the size limits (AS305), untaken branches included,
before anything is evaluated. Also: which strings of a spec are expressions, and the names one reads."""

from __future__ import annotations

import ast
import functools
import re
from typing import NamedTuple
import warnings

from archspec.expr.errors import ExprError
from archspec.expr.functions import FUNCTIONS
from archspec.expr.limits import MAX_AST_NODES, MAX_SOURCE_CHARS
from archspec.expr.values import type_name

_SHORTHAND = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_NEWLINE = re.compile(r"\r\n|\r|\n")


_FORBIDDEN: dict[type, str] = {
    ast.Attribute: "attribute access (x.y) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.SetComp: "only list comprehensions [... for x in xs] are allowed",
    ast.DictComp: "only list comprehensions [... for x in xs] are allowed",
    ast.GeneratorExp: "only list comprehensions are allowed: write [... for x in xs], in brackets",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "the walrus operator (:=) is not allowed",
    ast.Dict: "dict/set literals are not allowed",
    ast.Set: "dict/set literals are not allowed",
    ast.Starred: "* unpacking is not allowed",
}
_ALLOWED = (
    ast.Constant,
    ast.Name,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Tuple,
    ast.List,
    ast.Subscript,
    ast.Slice,
    ast.Call,
    ast.ListComp,
)
_BAD_OPS = {
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
}


class Parsed(NamedTuple):
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
        return f"{type_name(node.value)} literals are not allowed"
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
def parse(source: str) -> Parsed:
    # Length first: the parser is the costly step, and deep nesting could exhaust its stack.
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprError("AS305", f"the expression has {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
    text = source.lstrip()
    parsed = Parsed(ast.expr(), text, len(source) - len(text))
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


def names_used(source: str) -> set[str]:
    """The free names of an expression: scope names it reads (called built-in functions are not names,
    nor are the loop names of a comprehension inside it)."""
    return set(free_names(source))


@functools.lru_cache(maxsize=1024)
def free_names(source: str) -> tuple[str, ...]:
    """names_used, sorted, remembered by text (the evaluator's memo reads it at every evaluation)."""
    return tuple(sorted(_free_names(parse(source).body, frozenset())))


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
