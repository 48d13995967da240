"""Carry a built module's weights across an inference rewrite (archspec.passes.inference.Optimized).

The source module has the weights (initialised, or loaded from a reference checkpoint, whose names are
the source graph's); the rewritten graph is generated on the meta device and takes the source's tensors
by name, except each folded conv's weight and bias, which absorb their batch norm. The folding
arithmetic runs in float64, so the folded network differs from the source only by the rounding of the
final float32 weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import fx, nn

from archspec.backends.torch.codegen import generate
from archspec.backends.torch.lowering import Lowering
from archspec.passes.inference import BatchNormFold, Optimized


def apply_plan(source: nn.Module, plan: Optimized, table: Mapping[str, Lowering]) -> fx.GraphModule:
    """The module for `plan.graph`, in eval mode, computing what `source` computes in eval mode."""
    state = source.state_dict()
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # no storage, no draw on the global RNG
        target = generate(plan.graph, table, plan.graph.name, fill=False)
    wanted = target.state_dict()
    new = {name: state[name] for name in wanted if name in state}
    for fold in plan.folds:
        new.update(folded(fold, state))
    target.load_state_dict(new, strict=True, assign=True)
    # Buffers outside the state dict (rope's non-persistent frequencies) are still on the meta device: the source's.
    sources = dict(source.named_buffers())
    for name, buffer in list(target.named_buffers()):
        if buffer.is_meta and name in sources:
            owner, _, leaf = name.rpartition(".")
            target.get_submodule(owner)._buffers[leaf] = sources[name]
    return target.eval()


def folded(fold: BatchNormFold, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The conv's new weight and bias (see BatchNormFold), in the conv weight's dtype."""
    weight = state[f"{fold.conv}.weight"]
    w = weight.double()
    mean, var = state[f"{fold.bn}.running_mean"].double(), state[f"{fold.bn}.running_var"].double()
    gamma = state[f"{fold.bn}.weight"].double() if fold.affine else torch.ones_like(mean)
    beta = state[f"{fold.bn}.bias"].double() if fold.affine else torch.zeros_like(mean)
    bias = state[f"{fold.conv}.bias"].double() if fold.conv_bias else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + fold.eps)
    return {
        f"{fold.conv}.weight": (w * scale.reshape(-1, *[1] * (w.dim() - 1))).to(weight.dtype),
        f"{fold.conv}.bias": ((bias - mean) * scale + beta).to(weight.dtype),
    }
