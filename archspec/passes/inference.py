"""Inference rewrites: drop what only matters while training, fold batch norm into convolutions.

`optimize` runs them in order and returns an `Optimized` plan: the rewritten graph, the graph it came
from, and what a backend must do to the source graph's weights (`folds`) so that the rewritten graph
computes the same function. Weights belong to the source graph (reference checkpoints name batch-norm
statistics), so a backend builds the source, loads weights, then transforms them by the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from archspec.ir import Graph
from archspec.ops.norm import BatchNorm
from archspec.passes.base import run_passes
from archspec.passes.counts import count
from archspec.passes.shapes import InferShapes
from archspec.registry import Registry

TRAINING_ONLY = frozenset({"dropout", "drop_path", "identity"})


@dataclass(frozen=True)
class DropTrainingOnly:
    """Remove dropout, drop_path and identity nodes, wiring their users to their input.

    Before: shapes inferred. After: no node of those ops remains; every other node, shape and the
    output's shape are unchanged (each removed op preserves shape), so counts are unchanged too.
    """

    name: str = "drop-training-only"

    def run(self, graph: Graph) -> Graph:
        out = graph.copy()
        for name in [n.name for n in out if n.op in TRAINING_ONLY]:
            source = out.node(name).inputs[0]  # re-read: removing an earlier node may have rewired this one
            out.rewire(name, source)
            out.remove(name)
        return out


@dataclass(frozen=True)
class BatchNormFold:
    """Conv `conv` absorbs the batch norm `bn` that alone reads it. With s = gamma / sqrt(var + eps)
    per output channel: weight' = weight * s, bias' = (bias - mean) * s + beta (bias 0 when the conv had
    none; gamma 1 and beta 0 when the norm is not affine)."""

    conv: str
    bn: str
    eps: float
    affine: bool
    conv_bias: bool


def batchnorm_folds(graph: Graph) -> tuple[BatchNormFold, ...]:
    """Every batch norm over [C, H, W] whose input is a conv2d read by that norm alone (and not the
    graph's output), in graph order: what FoldBatchNorm folds and how the weights must follow."""
    folds = []
    for node in graph.ops:
        if node.op != "batchnorm" or len(node.shape or ()) != 3:
            continue
        conv = graph.node(node.inputs[0])
        if conv.op == "conv2d" and graph.users(conv.name) == [node.name] and conv.name not in graph.outputs:
            p: BatchNorm = node.params  # type: ignore[assignment]
            folds.append(BatchNormFold(conv.name, node.name, p.eps, p.affine, conv.params.bias))  # type: ignore[union-attr]
    return tuple(folds)


@dataclass(frozen=True)
class FoldBatchNorm:
    """Fold each batch norm of `batchnorm_folds(graph)` into its conv.

    Before: shapes inferred. After: each folded conv has a bias, its batch norm is gone and the norm's
    users read the conv; shapes are unchanged. Counts change by +C (the bias, where the conv had none)
    and -2C (gamma, beta) per fold. Exact in eval mode only, and only once the weights are transformed
    as the folds say: the pass rewrites structure, a backend rewrites tensors.
    """

    name: str = "fold-batchnorm"

    def run(self, graph: Graph) -> Graph:
        out = graph.copy()
        for fold in batchnorm_folds(graph):
            conv = out.node(fold.conv)
            out.replace(fold.conv, params=conv.params.model_copy(update={"bias": True}))  # type: ignore[union-attr]
            out.rewire(fold.bn, fold.conv)
            out.remove(fold.bn)
        return out


CHANNELS_LAST_SHARE = 0.5  # of all MACs in conv2d: convolution-bound networks, not ViT's patch stem


@dataclass(frozen=True)
class Optimized:
    """An inference build plan. `graph` is `source` after the passes; `folds` say how the source's
    weights become the graph's; `channels_last` is whether the network is convolution-bound (at least
    CHANNELS_LAST_SHARE of its MACs in conv2d), where NHWC memory format pays. Memory format is not an
    IR concept: a backend that has one applies it to the built module."""

    source: Graph
    graph: Graph
    folds: tuple[BatchNormFold, ...]
    channels_last: bool


def optimize(graph: Graph, registry: Registry, *, lint: bool = False) -> Optimized:
    """Drop training-only ops, fold batch norms, re-infer shapes; `lint` checks the IR after each pass."""
    slim = run_passes(graph, [DropTrainingOnly()], lint=lint)
    folds = batchnorm_folds(slim)
    out = run_passes(slim, [FoldBatchNorm(), InferShapes(registry)], lint=lint)
    costs = count(out, registry)
    conv_macs = sum(layer.macs for layer in costs.layers if layer.op == "conv2d")
    return Optimized(graph, out, folds, costs.macs > 0 and conv_macs >= CHANNELS_LAST_SHARE * costs.macs)
