"""How much memory a network needs, from its counts and shapes alone, checked before anything is allocated.

A 4.9-billion-parameter spec validates in milliseconds and would then ask torch for 19.6 GB; an input at
the element limit, traced with a batch of 2, for 16 GB. `check_footprint` refuses such a build up front and
says how much it would need, so a user who has the memory can raise the limit knowingly.
"""

from __future__ import annotations

from dataclasses import dataclass

from archspec.errors import SpecError, SpecErrors
from archspec.ir import Graph, numel
from archspec.limits import Limits
from archspec.passes.counts import Costs

FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Footprint:
    params: int
    activations: int  # elements per sample over every node's output, the input included (what training keeps)

    def bytes(self, batch: int, itemsize: int = FLOAT32_BYTES) -> int:
        return (self.params + batch * self.activations) * itemsize


def footprint(graph: Graph, costs: Costs) -> Footprint:
    return Footprint(costs.params, sum(numel(node.shape or ()) for node in graph))


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check_footprint(graph: Graph, costs: Costs, limits: Limits, batch: int) -> Footprint:
    """Raise AS503 when building (and running a batch of `batch`) would pass the parameter or memory limit."""
    fp = footprint(graph, costs)
    biggest = max(costs.layers, key=lambda layer: layer.params, default=None)
    where = graph.node(biggest.name).source if biggest is not None else graph.input.source
    if fp.params > limits.params:
        share = f"; layer {biggest.name!r} alone has {biggest.params:,}" if biggest is not None else ""
        raise SpecErrors(
            [
                SpecError(
                    "AS503",
                    f"the network has {fp.params:,} parameters ({gigabytes(fp.params * FLOAT32_BYTES)} "
                    f"in float32), above the limit of {limits.params:,}{share}. Check the widths, or "
                    f"raise --limit params=N if this is intended",
                    where,
                )
            ]
        )
    need = fp.bytes(batch)
    if need > limits.memory_bytes:
        raise SpecErrors(
            [
                SpecError(
                    "AS503",
                    f"building needs about {gigabytes(need)}: {gigabytes(fp.params * FLOAT32_BYTES)} of "
                    f"parameters and {gigabytes(batch * fp.activations * FLOAT32_BYTES)} of activations for a "
                    f"batch of {batch}, above the limit of {gigabytes(limits.memory_bytes)}. Check the input "
                    "size and widths, or raise --limit memory_bytes=N (e.g. 32Gi) if the machine has the memory",
                    graph.input.source if fp.params * FLOAT32_BYTES < need / 2 else where,
                )
            ]
        )
    return fp
