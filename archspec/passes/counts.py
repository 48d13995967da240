"""Static parameter and MAC counts, computed from shapes alone (no tensors are built).

MACs follow the reference convention (shared/reference/README.md): multiply-accumulates of every
convolution (groups respected), linear layer and matrix product, attention scores and weighted values
included, for one sample; norms, activations, pooling, softmax and elementwise ops count zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from archspec.errors import SpecError, SpecErrors
from archspec.ir import Graph, Shape
from archspec.registry import Registry


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    output: Shape
    params: int
    macs: int
    trainable: bool = True  # False: the layer's tensors take no gradient (its params are not trainable_params)


@dataclass(frozen=True)
class Costs:
    name: str
    input: Shape
    output: Shape
    layers: tuple[LayerCost, ...]
    outputs: tuple[Shape, ...] = ()  # every output's shape, `output` first (a network may return several)
    input_dtype: str = "float32"  # int64 for token ids (input: {shape: [...], dtype: int64})

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        """Parameters that take a gradient: all but those of `trainable: false` layers."""
        return sum(layer.params for layer in self.layers if layer.trainable)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "input": list(self.input),
            "input_dtype": self.input_dtype,
            "output": list(self.output),
            "outputs": [list(s) for s in self.outputs],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "layers": [
                {"name": l.name, "op": l.op, "output": list(l.output), "params": l.params, "macs": l.macs}
                for l in self.layers
            ],
        }


def count(graph: Graph, registry: Registry) -> Costs:
    """Parameters and MACs of every op node. Needs shapes on every node (lint(shapes=True) holds)."""
    layers = []
    for node in graph.ops:
        op = registry.op(node.op)
        inputs = graph.input_shapes(node)
        assert node.shape is not None  # guaranteed by lint after lowering / InferShapes
        try:
            params, macs = op.param_count(node.params, inputs), op.macs(node.params, inputs, node.shape)
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (params, macs)):
                raise TypeError(f"counted {params!r} parameters and {macs!r} MACs, not whole numbers >= 0")
        except Exception as exc:  # an op's own count functions failed: a bug in the package providing it
            provider = registry.ops[node.op].provider if node.op in registry.ops else "an unknown package"
            raise SpecErrors(
                [
                    SpecError(
                        "AS805",
                        f"op {node.op!r} (layer {node.name!r}): its count functions raised "
                        f"{type(exc).__name__}: {exc}. This is a bug in {provider}; report it there",
                        node.source,
                    )
                ]
            ) from None
        layers.append(LayerCost(node.name, node.op, node.shape, params, macs, node.trainable))
    return Costs(
        graph.name, graph.input.shape or (), graph.output_shape, tuple(layers), graph.output_shapes, graph.input.dtype
    )
