"""Fidelity of the rest of the zoo: the sizes of each family that the family files check only statically.

The family files compare one spec per kind of block numerically, through a weights file and with the
reference's own initialisation. Here the other specs with a torchvision or timm counterpart (2.5 billion
parameters together; EfficientNet-B2..B7 are in test_fidelity_efficientnet.py) are built whole, every layer
at its full width, and compute the reference's outputs in eval mode with the reference's weights, paired
as `--weights` pairs them: random weights, non-trivial batch-norm statistics, norm scales, class tokens
and position embeddings (tests/reference.py, `random_reference` and `assert_pairs_and_matches`: in memory,
on one copy of the tensors, without either side's initialisation).

`test_a_wrong_pairing_fails` shows the comparison can fail. How much a wrong tensor shows depends on where
it sits: the weights, batch-norm statistics and norm scales of the last block, exchanged with their
neighbours', change the output by 1e-2 or more everywhere; a late batch-norm bias of the deep ResNets
barely does (ResNet-101/152: 4e-7 and 2e-7, under the tolerance), as their eval-mode activations grow over
the depth and dwarf it. `test_every_reference_spec_has_a_numeric_check` makes sure no spec with a reference
goes without a numeric test in the default run.
"""

from __future__ import annotations

from pathlib import Path
import re

import pytest
import timm
import torch
import torchvision

from archspec.backends.torch.weights import Pairing, pair_state_dict
from archspec.bench.reference import REFERENCES, build_reference
from archspec.ir import Graph
import reference
from reference import SPECS, TOLERANCE, assert_pairs_and_matches, fidelity_params, on_meta, random_reference

# spec -> (library, input side, batch). The convolutional networks at 32 px, where their last maps are
# 1x1 (VGG's adaptive pool makes 7x7 of it), and batch 2. The transformers' cost is their weights, read
# once per row of tokens: ViT at one patch (the class token and one patch token, two rows), Mixer at 2x2
# patches (four tokens to mix), each at batch 1. Batch independence and larger grids are the same code
# in every size; vit_b_16 and mixer_b16 check them at 224 px and batch 2.
ZOO_REST: dict[str, tuple[str, int, int]] = {
    **{
        name: ("torchvision", 32, 2)
        for name in [
            "vgg13",
            "vgg16",
            "vgg19",
            "resnet34",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "wide_resnet50_2",
            "densenet169",
            "densenet201",
            "densenet161",
        ]
    },
    **{
        name: ("torchvision", patch, 1)
        for name, patch in [("vit_b_32", 32), ("vit_l_16", 16), ("vit_l_32", 32), ("vit_h_14", 14)]
    },
    **{
        name: ("timm", 2 * patch, 1)
        for name, patch in [
            ("mixer_s32", 32),
            ("mixer_s16", 16),
            ("mixer_b32", 32),
            ("mixer_l32", 32),
            ("mixer_l16", 16),
        ]
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(list(ZOO_REST)))
def test_matches_reference(name: str) -> None:
    library, side, batch = ZOO_REST[name]
    with on_meta():
        model = build_reference(library, name, {"resolution": side})
    assert_pairs_and_matches(SPECS / f"{name}.yaml", random_reference(model), batch, resolution=side)


# (spec, leaf name, dimensions) of the tensors exchanged: batch-norm statistics, conv weights, attention.
SWAPS = [("resnet34", "running_var", 1), ("resnet34", "weight", 4), ("vit_b_32", "in_proj_weight", 2)]


@pytest.mark.parametrize("name, leaf, dims", SWAPS)
def test_a_wrong_pairing_fails(name: str, leaf: str, dims: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: the last two same-shaped tensors of a kind, exchanged after pairing (what
    a wrong positional pairing would do), deep in the network where a change shows least, give an error
    far above the tolerance."""

    def swapping(ours: dict[str, torch.Tensor], checkpoint: dict[str, torch.Tensor], graph: Graph) -> Pairing:
        pairing = pair_state_dict(ours, checkpoint, graph)
        tensors = pairing.mapped
        kind = [n for n in tensors if n.rsplit(".", 1)[-1] == leaf and tensors[n].dim() == dims]
        a, b = next(
            (a, b) for a in reversed(kind) for b in reversed(kind) if b != a and tensors[b].shape == tensors[a].shape
        )
        tensors[a], tensors[b] = tensors[b], tensors[a]
        print(f"exchanged {a} and {b}")
        return pairing

    monkeypatch.setattr(reference, "pair_state_dict", swapping)
    library, side, batch = ZOO_REST[name]
    with on_meta():
        model = build_reference(library, name, {"resolution": side})
    with pytest.raises(AssertionError, match="relative error") as caught:
        assert_pairs_and_matches(SPECS / f"{name}.yaml", random_reference(model), batch, resolution=side)
    error = float(re.search(r"relative error (\S+) >", str(caught.value)).group(1))
    print(f"{name}, {leaf} exchanged: relative error {error:.3g}")
    assert error > 1000 * TOLERANCE


class _Claims:
    """Collects the specs that the `fidelity` marks of the default run name."""

    def __init__(self) -> None:
        self.specs: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("fidelity")
            if marker is not None and "exhaustive" not in item.keywords and item.get_closest_marker("skip") is None:
                self.specs.update(marker.args)


def test_every_reference_spec_has_a_numeric_check() -> None:
    """Every spec of the zoo with a torchvision or timm counterpart (in archspec/bench/reference.py's table,
    or named like a model of either library) is compared numerically, whole, by some test of the default
    run: a new spec without one fails here. What the marks claim, conftest.py checks as each marked test runs."""
    claims = _Claims()
    files = sorted(str(path) for path in Path(__file__).parent.glob("test_fidelity_*.py"))
    assert (
        pytest.main(
            [*files, "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception"], plugins=[claims]
        )
        == 0
    )
    counterparts = set().union(*REFERENCES.values()) | set(torchvision.models.list_models()) | set(timm.list_models())
    with_reference = {path.stem for path in SPECS.glob("*.yaml")} & counterparts
    assert len(with_reference) >= 50
    unchecked = sorted(with_reference - claims.specs)
    assert not unchecked, (
        f"no default-run test compares the outputs of {unchecked} with their reference: add one "
        "(tests/reference.py, assert_pairs_and_matches) and mark it (fidelity_params)"
    )
