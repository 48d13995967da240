"""Safe evaluation of the small arithmetic expressions allowed in spec values.

Specs come from strangers, so an expression is never given to Python's eval: it is parsed with
`ast.parse` and walked by a whitelist interpreter. Every construct outside the whitelist is AS302, and
the size of the source, of the tree and of every value computed is bounded (AS305) before costly work.

In a YAML value, "${ expr }" is an expression, "$name" is short for "${name}", a leading "$$" escapes a
literal "$" ("$$x" is the string "$x"), and any other string is a literal.

The package, by concern: `limits` (every bound), `errors` (ExprError), `values` (what a value is, frozen
and size-checked), `functions` (the callable whitelist), `parse` (text -> checked tree; which strings are
expressions; the names one reads), `interpret` (the interpreter and its step Meter).
"""

from archspec.expr.errors import ExprError
from archspec.expr.functions import FUNCTIONS
from archspec.expr.interpret import Meter, evaluate, resolve
from archspec.expr.limits import MAX_AST_NODES, MAX_EXPONENT, MAX_INT, MAX_SEQUENCE_LEN, MAX_SOURCE_CHARS, MAX_STEPS
from archspec.expr.parse import expression_source, is_expression, names_used
from archspec.expr.values import Value, checked, is_checked

__all__ = [
    "FUNCTIONS",
    "MAX_AST_NODES",
    "MAX_EXPONENT",
    "MAX_INT",
    "MAX_SEQUENCE_LEN",
    "MAX_SOURCE_CHARS",
    "MAX_STEPS",
    "ExprError",
    "Meter",
    "Value",
    "checked",
    "evaluate",
    "expression_source",
    "is_checked",
    "is_expression",
    "names_used",
    "resolve",
]
