"""Human-readable renderings of counts: the per-layer table of `archspec summary`."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic_core import PydanticUndefined

from archspec.lower import fmt_shape
from archspec.ops.base import OpDef
from archspec.passes.counts import Costs


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def table(costs: Costs) -> str:
    rows = [("layer", "op", "output", "params", "MACs")]
    rows += [(l.name, l.op, fmt_shape(l.output), f"{l.params:,}", f"{l.macs:,}") for l in costs.layers]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(5)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"{costs.name}: input {fmt_shape(costs.input)} -> output {fmt_shape(costs.output)}")
    lines.append(f"params {costs.params:,} ({human(costs.params)})   MACs {costs.macs:,} ({human(costs.macs)})")
    return "\n".join(lines)


def type_name(annotation: Any) -> str:
    """A YAML author's name for a parameter type: `int | [int, int]`, `'same' | 'valid'`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(type_name(a) for a in args if a is not type(None)) + (" | null" if type(None) in args else "")
    if origin is tuple:
        return "[" + ", ".join("..." if a is Ellipsis else type_name(a) for a in args) + "]"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def describe_op(op: OpDef[Any], provider: str) -> str:
    """An op's reference card: what it does, its inputs and its arguments with types and defaults."""
    low, high = op.arity
    inputs = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
    lines = [f"{op.name} ({op.category}, from {provider})", f"  {op.doc}", f"  inputs: {inputs}", "  arguments:"]
    for name, field in op.params.model_fields.items():
        kind = type_name(field.annotation)
        default = "required" if field.default is PydanticUndefined else f"default {field.default!r}"
        note = f"  {field.description}" if field.description else ""
        lines.append(f"    {name}: {kind}, {default}{note}")
    if not op.params.model_fields:
        lines.append("    none")
    return "\n".join(lines)
