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

A weights file comes from a stranger too. Only a state dict of string keys and dense, real, finite
tensors is taken: integer keys, meta/sparse/nested/quantized tensors and tensor subclasses, complex and
boolean values are AS701 errors naming the tensor, NaN or infinity is AS703. Floating-point tensors of
another precision (float16, bfloat16, float64) are converted to the model's dtype; integer tensors are
taken only for integer buffers (batch norm's num_batches_tracked).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
import warnings

import torch
from torch import nn

from archspec.errors import ArchspecError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .pt/.pth loaded with weights_only=True (no code runs)."""
    state: Any
    try:
        if path.is_dir():
            raise ArchspecError("AS701", f"weights file {path} is a folder; give the path of a .safetensors, .pt or .pth file")
        if not path.is_file():
            raise ArchspecError("AS701", f"weights file {path} does not exist" if not path.exists() else
                                f"weights file {path} is not a regular file")
    except (OSError, ValueError):
        raise ArchspecError("AS701", f"weights file {path} cannot be used as a path") from None
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            # safetensors keeps no order (keys come back sorted): restore numbered children's order.
            loaded = load_file(str(path))
            state = {k: loaded[k] for k in sorted(loaded, key=natural_key)}
        elif path.suffix in (".pt", ".pth", ".bin"):
            with warnings.catch_warnings():  # torch's notes on pickle protocols: our errors say what matters
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)  # may hold {"state_dict": ...}
        else:
            raise ArchspecError("AS701", f"weights file {path}: use .safetensors, .pt or .pth")
    except ArchspecError:
        raise
    except Exception as exc:  # corrupt or pickled-code files surface here
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ArchspecError("AS701", f"weights file {path} cannot be read: {type(exc).__name__}: {first}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ArchspecError("AS701", f"weights file {path} does not hold a state dict (a mapping of names to tensors)")
    for key, value in state.items():
        _check_entry(path, key, value)
    return dict(state)


def _check_entry(path: Path, key: object, value: object) -> None:
    if not isinstance(key, str):
        raise ArchspecError("AS701", f"weights file {path}: key {key!r} is a {type(key).__name__}; a state dict's keys are names")
    where = f"weights file {path}: tensor {key!r}"
    if not isinstance(value, torch.Tensor):
        raise ArchspecError("AS701", f"{where} is a {type(value).__name__}, not a tensor")
    if type(value) not in (torch.Tensor, nn.Parameter):
        raise ArchspecError("AS701", f"{where} is a {type(value).__name__}, a tensor subclass; save plain tensors")
    if value.is_meta or value.layout != torch.strided or value.is_nested or value.is_quantized:
        kind = ("a meta tensor (no data)" if value.is_meta else "a nested tensor" if value.is_nested
                else "a quantized tensor" if value.is_quantized else f"a {value.layout} tensor")
        raise ArchspecError("AS701", f"{where} is {kind}; save dense float tensors (e.g. tensor.to_dense().float())")
    if value.is_complex() or value.dtype == torch.bool:
        raise ArchspecError("AS701", f"{where} has dtype {value.dtype}; weights must be real numbers")
    if value.is_floating_point():
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ArchspecError("AS703", f"{where} holds {bad} NaN or infinite value(s); the checkpoint is broken")
    elif _role(key) != "num_batches_tracked":
        raise ArchspecError("AS701", f"{where} has dtype {value.dtype}; weights must be floating point "
                            "(integers are taken only for num_batches_tracked)")


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
    ours = module.state_dict()  # once: a state_dict() per tensor made loading quadratic (2 s for inception_v3)
    mapped = match_state_dict(ours, reference)
    with torch.no_grad():
        module.load_state_dict({k: v.to(ours[k].dtype) for k, v in mapped.items()}, strict=True)
