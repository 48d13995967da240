"""Initial weights from a reference implementation's state dict: paired by name, or strictly by position.

Our tensor names follow the spec's layer names (`layer1.0.downsample.0.weight`); a spec names its layers
like the reference's modules where it can, and its `weights: rename:` rules map the rest (torchvision's
`encoder_layer_0` for our `0`, DenseNet's 1-based `denselayer1`). A tensor whose own name, or renamed
name, is in the checkpoint pairs by name; a rule `ref: "transposed(...)"` says the checkpoint stores that
tensor transposed (GPT-2's Conv1D weights, [in, out]), and it is transposed as it pairs, never by shape
alone: our own name is not looked up there. Whether a checkpoint holds the reference's layout or ours
(convert-weights' output) is decided once, from the matrices whose shape tells. What is left pairs by position, strictly: the k-th of ours with
the k-th of the checkpoint, every shape and role checked, and never where two of our layers with tensors of
the same shapes lie on parallel branches (their order is not fixed by anything the checkpoint shows). Any
mismatch is an error naming both tensors, located at our layer in the spec: weights never pair silently
wrong. A .pt/.pth state dict keeps registration order; a .safetensors file does not (its keys come back
sorted), so there the order is reconstructed from numbered names and pairing by name matters more.

A weights file comes from a stranger too. Only a state dict of string keys and dense, real, finite
tensors is taken: integer keys, meta/sparse/nested/quantized tensors and tensor subclasses, complex and
boolean values are AS701 errors naming the tensor, NaN or infinity is AS703. Floating-point tensors of
another precision (float16, bfloat16, float64) are converted to the model's dtype; integer tensors are
taken only for integer buffers: batch norm's num_batches_tracked, buffers the spec computes (by name), and
index tables (a leaf name ending in `index`, as torchvision's and timm's relative_position_index).

Buffers the spec computes itself (a `gather` index, a `constant` table: Swin's relative_position_index)
are never loaded: a checkpoint tensor of the same name is compared with ours (AS708 where they differ), and
an integer checkpoint tensor that pairs with nothing (an index table the spec computes another way, or does
not need) is skipped and reported: no parameter is an integer tensor, so it cannot be a weight the spec
lacks, and it never shifts the pairing by position of the tensors after it.

A tensor the spec ties (a linear's `tie:`: an LM head using the token embedding's weight) is one tensor of
ours, named by its owner (`transformer.wte.weight`). A checkpoint that holds it under the tying layer's name
as well (`lm_head.weight`, as torch's state_dict and Hugging Face's GPT-2 do) must hold the same values there
(AS710 otherwise), and that copy is used up; a checkpoint that holds only that name fills the owner from it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
import pickle
from typing import Any, NoReturn
import warnings

import torch
from torch import nn

from archspec.errors import ArchspecError, SpecError, SpecErrors
from archspec.ir import Graph, Naming
from archspec.paths import PatternError, parse_rename, renamed_as


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .pt/.pth loaded with weights_only=True (no code runs)."""
    state: Any
    try:
        if path.is_dir():
            raise ArchspecError(
                "AS701", f"weights file {path} is a folder; give the path of a .safetensors, .pt or .pth file"
            )
        if not path.is_file():
            raise ArchspecError(
                "AS701",
                f"weights file {path} does not exist"
                if not path.exists()
                else f"weights file {path} is not a regular file",
            )
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
    except pickle.UnpicklingError as exc:
        # torch's text advises re-running with weights_only=False (or allow-listing the file's globals): the one
        # thing not to do with a stranger's file. Only its diagnosis is kept.
        text = str(exc)
        detail = text.partition("WeightsUnpickler error:")[2].strip() or text.strip()
        detail = (detail.splitlines() or [""])[0].split(". Please use")[0].rstrip(". ")
        raise ArchspecError(
            "AS701",
            f"weights file {path} holds more than tensors, or is damaged ({detail}); archspec "
            "reads tensors only and never runs a file's code: give a plain state dict, or convert it "
            "to .safetensors",
        ) from None
    except Exception as exc:  # corrupt files surface here
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
        raise ArchspecError(
            "AS701", f"weights file {path}: key {key!r} is a {type(key).__name__}; a state dict's keys are names"
        )
    where = f"weights file {path}: tensor {key!r}"
    if not isinstance(value, torch.Tensor):
        raise ArchspecError("AS701", f"{where} is a {type(value).__name__}, not a tensor")
    if type(value) not in (torch.Tensor, nn.Parameter):
        raise ArchspecError("AS701", f"{where} is a {type(value).__name__}, a tensor subclass; save plain tensors")
    if value.is_meta or value.layout != torch.strided or value.is_nested or value.is_quantized:
        kind = (
            "a meta tensor (no data)"
            if value.is_meta
            else "a nested tensor"
            if value.is_nested
            else "a quantized tensor"
            if value.is_quantized
            else f"a {value.layout} tensor"
        )
        raise ArchspecError("AS701", f"{where} is {kind}; save dense float tensors (e.g. tensor.to_dense().float())")
    if value.is_complex() or value.dtype == torch.bool:
        raise ArchspecError("AS701", f"{where} has dtype {value.dtype}; weights must be real numbers")
    if value.is_floating_point():
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ArchspecError("AS703", f"{where} holds {bad} NaN or infinite value(s); the checkpoint is broken")


ROLES = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})


def _role(name: str) -> str:
    """What a tensor is to its module: batch norm's weight, bias and statistics share a shape and must
    never be paired with each other. Other leaves (class_token, in_proj_weight, ...) form one role."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf if leaf in ROLES else "*"


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """`features.10` after `features.2`: numbered children in their registration order."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in name.split(".")]


@dataclass
class Pairing:
    """Our tensor names -> checkpoint tensors, and how many were paired by name and by position."""

    mapped: dict[str, torch.Tensor] = field(default_factory=dict)
    by_name: int = 0
    by_position: int = 0
    transposed: int = 0  # of those paired by name, stored transposed (weights: rename: transposed(...))
    checked: list[str] = field(default_factory=list)  # our computed buffers found equal in the checkpoint
    skipped: list[str] = field(default_factory=list)  # checkpoint buffers (integer tables) nothing pairs with
    tied: list[str] = field(default_factory=list)  # tied copies in the checkpoint (lm_head.weight) equal to their owner

    def summary(self, source: str) -> str:
        transposed = f" ({self.transposed} stored transposed)" if self.transposed else ""
        text = (
            f"weights: {len(self.mapped)} tensors from {source}: {self.by_name} paired by name{transposed}, "
            f"{self.by_position} by position"
        )
        if self.checked:
            text += f"; {len(self.checked)} buffer(s) the spec computes match the checkpoint's"
        if self.tied:
            text += (
                f"; {len(self.tied)} tied copy(ies) ({', '.join(repr(n) for n in self.tied[:3])}) equal their owner's"
            )
        if self.skipped:
            shown = ", ".join(repr(n) for n in self.skipped[:3])
            text += (
                f"; skipped {len(self.skipped)} checkpoint buffer(s) the spec computes itself or does not use "
                f"({shown}{', ...' if len(self.skipped) > 3 else ''})"
            )
        return text


class _Layers:
    """Where our tensors come from in the spec: tensor name -> layer (IR node), for located errors and
    for the data-flow test of ambiguous positions."""

    def __init__(self, graph: Graph | None):
        self.graph = graph
        self.reaches = graph.reaches() if graph is not None else {}
        self.index = {name: k for k, name in enumerate(self.reaches)}

    def layer(self, tensor: str) -> str | None:
        parts = tensor.split(".")
        for k in range(len(parts), 0, -1):  # the whole name too: a tensor at its layer's own path
            prefix = ".".join(parts[:k])
            if prefix in self.index:
                return prefix
        return None

    def parallel(self, a: str, b: str) -> bool:
        """Neither layer depends on the other: their order is not fixed by the data flow."""
        ra, rb = self.reaches[a], self.reaches[b]
        return not (ra >> self.index[b] & 1) and not (rb >> self.index[a] & 1)


def _fail(code: str, message: str, layers: _Layers, tensor: str) -> NoReturn:
    name = layers.layer(tensor)
    node = layers.graph.node(name) if layers.graph is not None and name is not None else None
    if node is None or node.source is None:
        raise ArchspecError(code, message)
    raise SpecErrors([SpecError(code, message + node.place, node.source)])


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() != b.numel():
        return False
    if a.is_floating_point() or b.is_floating_point():
        # The spec computes in double precision, torch in the buffer's own: a last-place difference is the same table.
        return bool(torch.allclose(a.double().flatten(), b.double().flatten(), rtol=1e-5, atol=1e-6))
    return bool(torch.equal(a.flatten(), b.flatten()))


def pair_state_dict(
    ours: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    graph: Graph | None = None,
    naming: Naming | None = None,
    ordered: bool = True,
    computed: Collection[str] = (),
) -> Pairing:
    """Pair our tensors with a checkpoint's, or raise a (located, where the graph is given) error.

    1. By name: our name itself, else our name after the spec's rename rules, is a checkpoint name of the
       same shape. A name with another shape is an error (AS706). A rule that says `transposed(...)` is
       the only candidate for the names it matches, and its tensor is transposed first.
    2. By position, strictly: the k-th layer left on our side (registration order) with the k-th left in
       the checkpoint (file order; `ordered` False for a file that keeps none), their tensors by leaf name;
       leaves and shapes must agree and both sides run out together (AS704). Two layers with tensors of
       the same shapes whose order nothing fixes (parallel branches; alphabetical order in a .safetensors
       file) are an error (AS705), resolved by names.
    `computed` names our buffers the spec computes (never loaded): a checkpoint tensor of that name (or
    renamed name) must hold the same values (AS708). Integer checkpoint tensors left after pairing by name
    are buffers, not weights: they are skipped (and listed in the summary) before pairing by position.
    """
    naming = naming or (graph.naming if graph is not None else Naming())
    rules = []
    for ours_pattern, ref_template, _where in naming.rename:
        rules.append(parse_rename(ours_pattern, ref_template))
    layers = _Layers(graph)
    pairing = Pairing()
    used: set[str] = set()

    def renamed_of(name: str) -> tuple[str, bool]:
        try:
            return renamed_as(name, rules)
        except PatternError as exc:
            raise ArchspecError("AS437", str(exc)) from None

    def candidates_of(name: str) -> list[str]:
        other, transposed = renamed_of(name)
        if transposed and reference_layout:
            stored_transposed.add(other)
            return [other]
        found = [name] if other == name else [name, other]
        return found + ([tied_only[name]] if name in tied_only else [])

    stored_transposed: set[str] = set()  # checkpoint names a transposed(...) rule reached
    reference_layout = _transposed_layout(ours, reference, renamed_of, layers)
    tied_only: dict[
        str, str
    ] = {}  # our tied tensor -> the checkpoint's copy under the tying layer's name, its only one

    def tensor_of(c: str) -> torch.Tensor:
        """The checkpoint's tensor `c` in our layout."""
        tensor = reference[c]
        if c not in stored_transposed:
            return tensor
        if tensor.dim() != 2:
            raise ArchspecError(
                "AS706",
                f"a weights: rename: rule says the checkpoint's {c!r} is stored transposed, "
                f"but it is {_shape(tensor)}, not a matrix",
            )
        return tensor.t().contiguous()

    def stored(c: str) -> str:
        return f"{c!r} (stored transposed)" if c in stored_transposed else repr(c)

    for name in computed:
        present = [c for c in candidates_of(name) if c in reference and c not in used]
        if not present:
            continue
        c = present[0]
        if not _same_values(ours[name], tensor_of(c)):
            _fail(
                "AS708",
                f"the checkpoint's {stored(c)} {_shape(tensor_of(c))} differs from the spec's {name!r} "
                f"{_shape(ours[name])}, which the spec computes: the weights are for another configuration "
                "(window size, resolution?) or the spec's expression is wrong",
                layers,
                name,
            )
        used.add(c)
        pairing.checked.append(name)
    # A tied tensor (Node.ties: an LM head using the token embedding's weight) is one tensor of ours, under its
    # owner's name. A checkpoint may hold it under the tying layer's name too (torch's state_dict does, as in
    # Hugging Face's lm_head.weight): that copy must equal the owner's and is used up; where it is the only one
    # (a file that kept just that name), it fills the owner.
    ties = (
        [(f"{node.name}.{leaf}", owner) for node in graph.ops for leaf, owner in node.ties] if graph is not None else []
    )
    for alias, owner in ties:
        copies = [c for c in candidates_of(alias) if c in reference and c not in used]
        if not copies:
            continue
        originals = [o for o in candidates_of(owner) if o in reference and o not in used]
        if not originals:
            tied_only[owner] = copies[0]
            continue
        if tensor_of(copies[0]).shape != tensor_of(originals[0]).shape or not torch.equal(
            tensor_of(copies[0]), tensor_of(originals[0])
        ):
            _fail(
                "AS710",
                f"the checkpoint's {stored(copies[0])} differs from its {stored(originals[0])}, but the spec "
                f"ties {alias!r} to {owner!r} (one tensor): the checkpoint's model does not tie them; remove the tie: "
                "to load both",
                layers,
                owner,
            )
        used.add(copies[0])
        pairing.tied.append(alias)
    computed_set = set(computed)
    ours = {k: v for k, v in ours.items() if k not in computed_set}
    for name, tensor in ours.items():
        present = [c for c in candidates_of(name) if c in reference and c not in used]
        match = next((c for c in present if tuple(tensor_of(c).shape) == tuple(tensor.shape)), None)
        if match is not None and tensor.is_floating_point() and not reference[match].is_floating_point():
            _fail(
                "AS709",
                f"the checkpoint's {match!r} is an integer tensor ({reference[match].dtype}) but the spec's "
                f"{name!r} is a weight: the checkpoint holds an index table there, or another architecture",
                layers,
                name,
            )
        if match is not None:
            pairing.mapped[name] = tensor_of(match)
            used.add(match)
            pairing.by_name += 1
            pairing.transposed += match in stored_transposed
        elif present:
            c = present[0]
            _fail(
                "AS706",
                f"the checkpoint's {stored(c)} is {_shape(tensor_of(c))} but the spec's {name!r} is "
                f"{_shape(tensor)}: the weights are for another configuration (a --set value, a variant?) or "
                "another architecture",
                layers,
                name,
            )
    left_ours = [n for n in ours if n not in pairing.mapped]
    left_ref = [n for n in reference if n not in used]
    integers = [n for n in left_ref if not reference[n].is_floating_point() and _role(n) != "num_batches_tracked"]
    stray = next((n for n in integers if not _leaf(n).endswith("index")), None)
    if stray is not None:  # an integer tensor is no weight; only an index table may be left unused
        raise ArchspecError(
            "AS701",
            f"checkpoint tensor {stray!r} has dtype {reference[stray].dtype}; weights must be "
            "floating point (integer tensors are taken only for num_batches_tracked, buffers the spec "
            "computes, and index tables: names ending in index)",
        )
    pairing.skipped = integers
    skipped = set(pairing.skipped)
    left_ref = [n for n in left_ref if n not in skipped]
    if not left_ours and not left_ref:
        return pairing
    if not naming.by_position:
        left = left_ours or left_ref
        shown = ", ".join(repr(n) for n in left[:5])
        side = "of the spec's tensors" if left_ours else "of the checkpoint's tensors"
        _fail(
            "AS707",
            f"{len(left)} {side} pair by no name ({shown}{', ...' if len(left) > 5 else ''}) "
            "and the spec says weights: {by_position: false}; add rename rules",
            layers,
            (left_ours or [""])[0],
        )
    ours_groups, ref_groups = _groups(left_ours), _groups(left_ref)
    if not ordered:
        # A file without an order comes back sorted by name (classifier before features): take the order of
        # the top-level modules from ours where their names agree, numbered children in their numeric order.
        # Whatever order this makes is checked below like any other (shapes, and AS705 for guesses).
        rank: dict[str, int] = {}
        for path, _ in ours_groups:
            rank.setdefault(path.split(".")[0], len(rank))
        ref_groups.sort(key=lambda g: (rank.get(g[0].split(".")[0], len(rank)), natural_key(g[0])))
    for k in range(max(len(ours_groups), len(ref_groups))):
        if k >= len(ours_groups):
            extra = [n for _, names in ref_groups[k:] for n in names]
            _fail(
                "AS704",
                f"the checkpoint has {len(extra)} tensor(s) more than the spec after pairing by name and "
                f"position: {', '.join(f'{n!r} {_shape(reference[n])}' for n in extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}. The weights are not for this architecture",
                layers,
                left_ours[-1] if left_ours else "",
            )
        mine, names = ours_groups[k]
        if k >= len(ref_groups):
            _fail(
                "AS704",
                f"no checkpoint tensor is left for the spec's {names[0]!r} {_shape(ours[names[0]])} "
                f"(and {len(left_ours) - left_ours.index(names[0]) - 1} more); the weights are not for this architecture",
                layers,
                names[0],
            )
        theirs, ref_names = ref_groups[k]
        by_leaf = {_leaf(n): n for n in ref_names}
        for name in names:
            ref_name = by_leaf.get(_leaf(name))
            if (
                ref_name is None
                or tuple(ours[name].shape) != tuple(reference[ref_name].shape)
                or len(names) != len(ref_names)
            ):
                got = ", ".join(f"{_leaf(n)} {_shape(reference[n])}" for n in ref_names)
                want = ", ".join(f"{_leaf(n)} {_shape(ours[n])}" for n in names)
                _fail(
                    "AS704",
                    f"by position, the spec's layer {mine!r} ({want}) meets the checkpoint's {theirs!r} ({got}): "
                    "they differ. The spec orders its layers differently from the checkpoint (or the weights are for "
                    "another architecture): name the layers as the reference does, or add weights: rename: rules",
                    layers,
                    name,
                )
            pairing.mapped[name] = reference[ref_name]
            pairing.by_position += 1
    _check_unambiguous(ours_groups, ref_groups, ours, layers, ordered)
    return pairing


def _transposed_layout(
    ours: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    renamed_of: Callable[[str], tuple[str, bool]],
    layers: _Layers,
) -> bool:
    """Whether the checkpoint stores the tensors of `transposed(...)` rules transposed (the reference's own
    layout), or as ours (a checkpoint archspec wrote: convert-weights, a built module's state dict). Decided
    once for the whole checkpoint, by the matrices whose shape tells (not square); the square ones follow
    that decision, never their own shape. Without any such evidence the rule is taken at its word."""
    transposed, as_ours = [], []
    for name, tensor in ours.items():
        other, rule = renamed_of(name)
        if not rule or other not in reference or tensor.dim() != 2 or tensor.shape[0] == tensor.shape[1]:
            continue
        shape = tuple(reference[other].shape)
        if shape == tuple(tensor.shape)[::-1]:
            transposed.append(name)
        elif shape == tuple(tensor.shape):
            as_ours.append((name, other))
    if transposed and as_ours:
        name, other = as_ours[0]
        _fail(
            "AS706",
            f"the checkpoint stores {transposed[0]!r} transposed, as the spec's weights: rename: rule says, but "
            f"{other!r} as the spec's own layout {_shape(reference[other])}: it mixes two layouts",
            layers,
            name,
        )
    return not as_ours


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _groups(names: list[str]) -> list[tuple[str, list[str]]]:
    """Tensors by the module that holds them (the name less its last part), in order of first appearance.
    Positions count modules, and a module's tensors pair by leaf name (weight, bias, running_mean, ...):
    their order inside a module is not evidence (a .safetensors file sorts them)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.rsplit(".", 1)[0] if "." in name else "", []).append(name)
    return list(groups.items())


def _signature(names: list[str], state: Mapping[str, torch.Tensor]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((_leaf(n), tuple(state[n].shape)) for n in names))


def _first_difference_is_a_number(a: str, b: str) -> bool:
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            return x.isdigit() and y.isdigit()
    return True


def _check_unambiguous(
    ours_groups: list[tuple[str, list[str]]],
    ref_groups: list[tuple[str, list[str]]],
    ours: Mapping[str, torch.Tensor],
    layers: _Layers,
    ordered: bool,
) -> None:
    """Positions are evidence only where an order is fixed. On our side the data flow fixes it: two layers
    paired by position with the same tensor shapes, neither reading the other, could be either one in the
    checkpoint. On the checkpoint's side, a file without an order (.safetensors) fixes it only by numbered
    names (features.2 before features.10): siblings with other names were sorted alphabetically."""
    same: dict[tuple[tuple[str, tuple[int, ...]], ...], list[int]] = {}
    for k, (_, names) in enumerate(ours_groups):
        same.setdefault(_signature(names, ours), []).append(k)
    for positions in same.values():
        for i, k in enumerate(positions):
            for j in positions[i + 1 :]:
                a, b = ours_groups[k], ours_groups[j]
                la, lb = layers.layer(a[1][0]), layers.layer(b[1][0])
                parallel = la is not None and lb is not None and la != lb and layers.parallel(la, lb)
                unsorted = not ordered and not _first_difference_is_a_number(ref_groups[k][0], ref_groups[j][0])
                if parallel or unsorted:
                    why = (
                        "lie on parallel branches, so nothing fixes their order"
                        if parallel
                        else f"pair by position with the checkpoint's {ref_groups[k][0]!r} and {ref_groups[j][0]!r}, whose "
                        "order a .safetensors file does not keep (save a .pt/.pth, which does)"
                    )
                    _fail(
                        "AS705",
                        f"layers {la or a[0]!r} and {lb or b[0]!r} have tensors of the same shapes and {why}: "
                        "pairing by position cannot tell which checkpoint tensors are whose. Name them as the reference "
                        "does (its module paths), or add weights: rename: rules",
                        layers,
                        a[1][0],
                    )


def match_state_dict(
    ours: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], graph: Graph | None = None
) -> dict[str, torch.Tensor]:
    """Our names -> reference tensors (see `pair_state_dict`)."""
    return pair_state_dict(ours, reference, graph).mapped


def computed_buffers(state: Mapping[str, torch.Tensor], graph: Graph | None) -> list[str]:
    """Our state-dict entries that the spec computes (a buffer at the layer's own path of a gather or
    constant layer)."""
    from archspec.backends.torch.lowering import COMPUTED_BUFFERS

    if graph is None:
        return []
    return [k for k in state if k in graph and graph.node(k).op in COMPUTED_BUFFERS]


def load_reference_weights(module: nn.Module, path: Path, graph: Graph | None = None) -> Pairing:
    reference = read_state_dict(path)
    state = module.state_dict()
    computed = computed_buffers(state, graph)
    pairing = pair_state_dict(state, reference, graph, ordered=path.suffix != ".safetensors", computed=computed)
    with torch.no_grad():
        loaded = {k: v.to(state[k].dtype) for k, v in pairing.mapped.items()}
        module.load_state_dict({**{k: state[k] for k in computed}, **loaded}, strict=True)
    return pairing
