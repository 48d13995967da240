"""Human-readable renderings of counts: the per-layer table of `archspec summary`."""

from __future__ import annotations

from archspec.lower import fmt_shape
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
