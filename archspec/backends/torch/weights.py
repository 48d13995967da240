"""Initial weights from a reference implementation's state dict, matched by structure.

Names differ between implementations (`features.0.weight` vs `features.conv0.weight`), so tensors are
paired by order and shape: each of our state-dict entries, in registration order (the spec's layer
order), takes the next unused reference entry of the same shape. Where both follow the same layer
order this is exact pairing by position; it also tolerates a reference that registers a tensor early
(torchvision's ViT registers class_token before conv_proj). Anything left over on either side, or a
tensor with no partner of its shape, is an error that names both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from archspec.errors import ArchspecError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .pt/.pth loaded with weights_only=True (no code runs)."""
    if not path.is_file():
        raise ArchspecError("AS701", f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix in (".pt", ".pth", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True)
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


def match_state_dict(ours: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> reference tensors, or an AS702 error naming what does not match."""
    remaining = list(reference.items())
    used = [False] * len(remaining)
    start = 0  # everything before this index is used: keeps the scan linear for well-ordered pairs
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in ours.items():
        for k in range(start, len(remaining)):
            if not used[k] and tuple(remaining[k][1].shape) == tuple(tensor.shape):
                used[k] = True
                mapped[name] = remaining[k][1]
                break
        else:
            expected = next((ref for k, ref in enumerate(remaining) if not used[k]), None)
            hint = f"; the next unmatched reference tensor is {expected[0]!r} {list(expected[1].shape)}" if expected else ""
            raise ArchspecError("AS702", f"no reference tensor of shape {list(tensor.shape)} is left for {name!r}{hint}. "
                                "The weights are not for this architecture, or the spec's layer order differs from the reference")
        while start < len(used) and used[start]:
            start += 1
    leftover = [f"{n!r} {list(t.shape)}" for k, (n, t) in enumerate(remaining) if not used[k]]
    if leftover:
        raise ArchspecError("AS702", f"{len(leftover)} reference tensor(s) have no counterpart in the model: "
                            + ", ".join(leftover[:5]) + (", ..." if len(leftover) > 5 else ""))
    return mapped


def load_reference_weights(module: nn.Module, path: Path) -> None:
    reference = read_state_dict(path)
    mapped = match_state_dict(module.state_dict(), reference)
    with torch.no_grad():
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in mapped.items()}, strict=True)
