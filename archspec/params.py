"""Typed parameters: checking a value against its declaration, and binding the values a build uses.

Precedence, lowest first: the declared default, the chosen variant's row, the thin spec's `set:`,
then overrides from the command line (`--set`) or the API.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

from archspec.errors import Location, SpecError, SpecErrors, did_you_mean
from archspec.expr import MAX_INT, Value, is_checked
from archspec.load import load_text
from archspec.spec import ParamDecl

COMMAND_LINE = Location("<command line>", 1, 1)


def as_value(value: Any) -> Value:
    """YAML/JSON data -> an expression value (lists become tuples, so values stay immutable)."""
    if type(value) is tuple and is_checked(value):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(as_value(v) for v in value)
    return value


def type_error(decl: ParamDecl, value: Any) -> str | None:
    """Why `value` does not fit `decl`, or None when it does."""
    kind = decl.type
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"a number of {len(str(abs(value)))} digits is above the limit of 2**62"
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value)),  # math.isfinite(10**400) overflows
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, (list, tuple)),
        "any": True,
    }[kind]
    if not ok:
        return f"expected {kind}, got {type(value).__name__} {value!r}"
    if decl.choices is not None and as_value(value) not in [as_value(c) for c in decl.choices]:
        return f"{value!r} is not one of {decl.choices}"
    if kind in ("int", "float"):
        if decl.min is not None and value < decl.min:
            return f"{value!r} is below the minimum {decl.min:g}"
        if decl.max is not None and value > decl.max:
            return f"{value!r} is above the maximum {decl.max:g}"
    return None


def bind(
    decls: Mapping[str, ParamDecl],
    settings: Mapping[str, tuple[Any, Location | None]],
    *,
    what: str = "parameter",
    required_at: Location | None = None,
) -> dict[str, Value]:
    """Values for every declared parameter, checked; raise SpecErrors listing every problem."""
    errors: list[SpecError] = []
    values: dict[str, Value] = {}
    for name, (value, location) in settings.items():
        if name not in decls:
            errors.append(
                SpecError(
                    "AS206",
                    f"unknown {what} {name!r}.{did_you_mean(name, decls)} Declared: {', '.join(decls) or 'none'}.",
                    location,
                )
            )
            continue
        problem = type_error(decls[name], value)
        if problem:
            errors.append(SpecError("AS208", f"{what} {name!r}: {problem}", location))
        values[name] = as_value(value)
    for name, decl in decls.items():
        if name in values:
            continue
        if decl.required:
            errors.append(
                SpecError("AS201", f"{what} {name!r} is required ({decl.type}); give it a value", required_at)
            )
        else:
            values[name] = as_value(decl.default)
    if errors:
        raise SpecErrors(errors)
    return values


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as a YAML scalar or flow list."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecErrors(
            [SpecError("AS206", f"--set {text!r}: write key=value, e.g. --set num_classes=10", COMMAND_LINE)]
        )
    doc = load_text(raw, file=f"--set {key.strip()}")
    return key.strip(), doc.data
