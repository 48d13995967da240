"""Initial weights from a reference implementation's state dict, matched by structure.

Tensors with the same name and shape on both sides are paired first (specs name layers like the
reference where they can). Names may differ (`features.0.weight` vs `features.conv0.weight`), so the
rest are paired by order, shape and role: each of our state-dict entries, in registration order (the
spec's layer order), takes the next unused reference entry of the same shape and role (weight, bias,
running_mean, ...). Where both follow the same layer order this is exact pairing by position; it also
tolerates a reference that registers a tensor early (torchvision's ViT registers class_token before
conv_proj). A .pt/.pth state dict keeps registration order; a .safetensors file does not (its keys come
back sorted), so there the order is reconstructed from numbered names and the name pass matters more.
Anything left over on either side, or a tensor with no partner, is an AS702 error naming both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archspec.errors import ArchspecError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state: Any
    """A state dict from .safetensors, or from .pt/.pth loaded with weights_only=True (no code runs)."""
    if not path.is_file():
        raise ArchspecError("AS701", f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            # safetensors keeps no order (keys come back sorted): restore numbered children's order.
            loaded = load_file(str(path))
            state = {k: loaded[k] for k in sorted(loaded, key=natural_key)}
        elif path.suffix in (".pt", ".pth", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True)  # may hold {"state_dict": ...}
        else:
            raise ArchspecError("AS701", f"weights file {path}: use .safetensors, .pt or .pth")
    except ArchspecError:
        raise
    except Exception as exc:  # corrupt or pickled-code files surface here
        raise ArchspecError("AS701", f"weights file {path} cannot be read: {type(exc).__name__}: {exc}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArchspecError("AS701", f"weights file {path} does not hold a state dict of tensors")
    return dict(state)


ROLES = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})


def _role(name: str) -> str:
    """What a tensor is to its module: batch norm's weight, bias and statistics share a shape and must
    never be paired with each other. Other leaves (class_token, in_proj_weight, ...) form one role."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf if leaf in ROLES else "*"


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """`features.10` after `features.2`: numbered children in their registration order."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in name.split(".")]


def match_state_dict(ours: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> reference tensors, or an AS702 error naming what does not match.

    First every tensor whose name and shape are the same on both sides is paired. The rest are paired
    in order: each of ours takes the first unused reference tensor of the same shape and role.
    """
    mapped: dict[str, torch.Tensor] = {}
    used = set()
    for name, tensor in ours.items():
        ref = reference.get(name)
        if ref is not None and tuple(ref.shape) == tuple(tensor.shape):
            mapped[name] = ref
            used.add(name)
    remaining = [(n, t) for n, t in reference.items() if n not in used]
    taken = [False] * len(remaining)
    start = 0  # everything before this index is taken: keeps the scan linear for well-ordered pairs
    for name, tensor in ours.items():
        if name in mapped:
            continue
        shape, role = tuple(tensor.shape), _role(name)
        for k in range(start, len(remaining)):
            ref_name, ref = remaining[k]
            if not taken[k] and tuple(ref.shape) == shape and _role(ref_name) == role:
                taken[k] = True
                mapped[name] = ref
                break
        else:
            expected = next((ref for k, ref in enumerate(remaining) if not taken[k]), None)
            hint = f"; the next unmatched reference tensor is {expected[0]!r} {list(expected[1].shape)}" if expected else ""
            raise ArchspecError("AS702", f"no reference tensor of shape {list(shape)} is left for {name!r}{hint}. "
                                "The weights are not for this architecture, or the spec's layer order differs from the reference")
        while start < len(taken) and taken[start]:
            start += 1
    leftover = [f"{n!r} {list(t.shape)}" for k, (n, t) in enumerate(remaining) if not taken[k]]
    if leftover:
        raise ArchspecError("AS702", f"{len(leftover)} reference tensor(s) have no counterpart in the model: "
                            + ", ".join(leftover[:5]) + (", ..." if len(leftover) > 5 else ""))
    return mapped


def load_reference_weights(module: nn.Module, path: Path) -> None:
    reference = read_state_dict(path)
    mapped = match_state_dict(module.state_dict(), reference)
    with torch.no_grad():
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in mapped.items()}, strict=True)
