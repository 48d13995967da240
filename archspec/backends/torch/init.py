"""The torch side of `init:` rules: each distribution of archspec.init.DISTRIBUTIONS as a torch.nn.init
call (timm's trunc_normal_tf_ and variance_scaling_ written out here, so timm is not a dependency).

Applied by codegen right after a layer's module is made, in graph order, drawing from torch's global RNG
(seeded by the build), so a spec and seed give the same bytes on every build."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any

import torch
from torch import nn

from archspec.errors import ArchspecError
from archspec.ir import VALUES, Init, InitArg


def _trunc_normal_tf(t: torch.Tensor, mean: float, std: float, a: float, b: float) -> None:
    # timm's trunc_normal_tf_: truncate a standard normal to [a, b], then scale by std and shift by mean.
    nn.init.trunc_normal_(t, 0.0, 1.0, a, b)
    t.mul_(std).add_(mean)


def _variance_scaling(t: torch.Tensor, scale: float, mode: str, distribution: str) -> None:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(t)
    denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / denom
    if distribution == "truncated_normal":  # .8796...: std of a standard normal truncated to (-2, 2)
        _trunc_normal_tf(t, 0.0, math.sqrt(variance) / 0.87962566103423978, -2.0, 2.0)
    elif distribution == "normal":
        t.normal_(std=math.sqrt(variance))
    else:
        bound = math.sqrt(3 * variance)
        t.uniform_(-bound, bound)


FILL: Mapping[str, Callable[..., Any]] = {
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
    "constant": lambda t, value: nn.init.constant_(t, value),
    "normal": lambda t, mean, std: nn.init.normal_(t, mean, std),
    "uniform": lambda t, a, b: nn.init.uniform_(t, a, b),
    "trunc_normal": lambda t, mean, std, a, b: nn.init.trunc_normal_(t, mean, std, a, b),
    "trunc_normal_tf": _trunc_normal_tf,
    "kaiming_normal": lambda t, a, mode, nonlinearity: nn.init.kaiming_normal_(t, a, mode, nonlinearity),
    "kaiming_uniform": lambda t, a, mode, nonlinearity: nn.init.kaiming_uniform_(t, a, mode, nonlinearity),
    "xavier_normal": lambda t, gain: nn.init.xavier_normal_(t, gain),
    "xavier_uniform": lambda t, gain: nn.init.xavier_uniform_(t, gain),
    "variance_scaling": _variance_scaling,
}


def initialise(module: nn.Module, layer: str, inits: tuple[tuple[str, Init], ...]) -> None:
    """Fill `module`'s tensors as the layer's init rules say (`default`: leave PyTorch's own)."""
    for tensor, init in inits:
        if init.kind == "default":
            continue
        try:
            target = module.get_parameter(tensor)
        except AttributeError:
            raise ArchspecError(
                "AS803",
                f"layer {layer!r}: the torch module has no tensor {tensor!r} for its init "
                "rule; the op's declared weights and its torch lowering disagree",
            ) from None
        _fill(target, init)


def initialise_owned(tensor: torch.Tensor, layer: str, inits: tuple[tuple[str, Init], ...]) -> None:
    """Fill a tensor a layer owns at its own path (layer_scale, parameter): its init rules use the key ""."""
    for key, init in inits:
        if key == "" and init.kind != "default":
            _fill(tensor, init)


def _fill(target: torch.Tensor, init: Init) -> None:
    with torch.no_grad():
        if init.kind == VALUES:  # lowering checked the count; the values are the tensor's, in its order
            target.copy_(torch.tensor(init.values, dtype=target.dtype, device=target.device).reshape(target.shape))
        else:
            args: dict[str, InitArg] = dict(init.args)
            FILL[init.kind](target, **args)
