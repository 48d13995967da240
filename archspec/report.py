"""Human-readable renderings of counts: the per-layer table of `archspec summary`."""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic_core import PydanticUndefined

from archspec.imports import BlockRef
from archspec.ir import Graph
from archspec.lower import fmt_shape
from archspec.ops.base import OpDef
from archspec.passes.counts import Costs


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _init_text(graph: Graph, name: str) -> str:
    """How a layer's tensors start (its init: rules), e.g. `weight=kaiming_normal(...) bias=zeros`."""
    if name not in graph:
        return ""
    return " ".join(f"{tensor}={init}" for tensor, init in graph.node(name).init)


def table(costs: Costs, graph: Graph | None = None) -> str:
    """The per-layer table; with `graph`, a last column says how each layer's tensors are initialised
    (init: rules; a tensor no rule names keeps the backend's default, PyTorch's reset_parameters)."""
    rows = [("layer", "op", "output", "params", "MACs") + (("init",) if graph is not None else ())]
    rows += [
        (l.name, l.op, fmt_shape(l.output), f"{l.params:,}", f"{l.macs:,}")
        + ((_init_text(graph, l.name),) if graph is not None else ())
        for l in costs.layers
    ]
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i < 3 or i == 5 else row[i].rjust(widths[i]) for i in range(n)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    shown = " ".join(fmt_shape(s) for s in costs.outputs) if len(costs.outputs) > 1 else fmt_shape(costs.output)
    dtype = "" if costs.input_dtype == "float32" else f" {costs.input_dtype}"  # token ids: say so
    lines.append(
        f"{costs.name}: input {fmt_shape(costs.input)}{dtype} -> output{'s' if len(costs.outputs) > 1 else ''} {shown}"
    )
    # Trainable params only where some are frozen (trainable: false), so the common case stays one short line.
    trainable = costs.trainable_params
    frozen = f"   trainable {trainable:,} ({human(trainable)})" if trainable != costs.params else ""
    lines.append(f"params {costs.params:,} ({human(costs.params)}){frozen}   MACs {costs.macs:,} ({human(costs.macs)})")
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


def describe_block(ref: BlockRef) -> str:
    """A library block's reference card: where it comes from, its doc, inputs, outputs and parameters."""
    block = ref.block
    lines = [f"{ref.name} (block, from {ref.source}; use it with imports: [{ref.source}])"]
    if ref.preset:
        sets = ", ".join(f"{k}: {json.dumps(v)}" for k, v in ref.preset.items())
        lines.append(
            f"  a preset of {next(n for n, r in ref.scope.items() if r.block is block and not r.preset)} "
            f"that sets {sets}"
        )
    if block.doc:
        lines.append(f"  {' '.join(block.doc.split())}")
    lines.append(f"  inputs: {', '.join(block.inputs) if block.inputs else '1 (input)'}")
    if block.outputs:
        lines.append(f"  outputs: the last layer's, and {', '.join(block.outputs)} (read as from: LAYER.NAME)")
    lines.append("  parameters:" if block.params else "  parameters: none")
    for name, decl in block.params.items():
        default = "required" if decl.required else f"default {decl.default!r}"
        choices = f", one of {', '.join(map(str, decl.choices))}" if decl.choices else ""
        note = f"  {' '.join(decl.doc.split())}" if decl.doc else ""
        lines.append(f"    {name}: {decl.type}, {default}{choices}{note}")
    return "\n".join(lines)
