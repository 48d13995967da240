"""Fidelity of the EfficientNetV2 specs against torchvision.models.efficientnet (V2 S, M and L).

Statically, on the meta device (M and L with --exhaustive): parameter and buffer shapes in state-dict
order, batch-norm eps and momentum, dropout and the stochastic-depth schedule equal torchvision's.
Numerically, by default: a small stage table of both block kinds, built by torchvision's EfficientNet
class and by the family spec, gives the same outputs; with --exhaustive S and M themselves do, from
torchvision's weights (paired by name, apart from the head conv) at 64 px (the network takes any side).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
import torchvision

import archspec
from archspec.backends.torch.modules import DropPath
from archspec.paths import parse_rename, renamed
from reference import (
    SPECS,
    assert_matches_reference,
    assert_pairs_and_matches,
    fidelity_params,
    on_meta,
    random_reference,
)

FAMILY = SPECS / "families" / "efficientnet_v2.yaml"


def _residual_drop_probs(model: nn.Module) -> list[float]:
    if isinstance(model, torchvision.models.EfficientNet):  # torchvision keeps one in every block
        return [b.stochastic_depth.p for stage in model.features[1:-1] for b in stage if b.use_res_connect]
    return [m.p for m in model.modules() if isinstance(m, DropPath)]


@pytest.mark.parametrize(
    "name",
    [
        "efficientnet_v2_s",
        pytest.param("efficientnet_v2_m", marks=pytest.mark.exhaustive),
        pytest.param("efficientnet_v2_l", marks=pytest.mark.exhaustive),
    ],
)
def test_structure_matches_torchvision(name: str) -> None:
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
        ours = archspec.build(FAMILY, variant=name)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [b.shape for b in ours.buffers()] == [b.shape for b in reference.buffers()]
    norms = lambda m: [(x.eps, x.momentum) for x in m.modules() if isinstance(x, nn.BatchNorm2d)]  # noqa: E731
    assert norms(ours) == norms(reference)
    dropouts = lambda m: [x.p for x in m.modules() if isinstance(x, nn.Dropout)]  # noqa: E731
    assert dropouts(ours) == dropouts(reference)
    assert _residual_drop_probs(ours) == pytest.approx(_residual_drop_probs(reference), abs=1e-12)
    # The rename rules give every tensor torchvision's name but the head conv's (features.7 in S: its
    # index depends on the table's length), which pairs by position.
    rules = [parse_rename(o, r) for o, r, _ in archspec.compile_spec(FAMILY, variant=name).graph.naming.rename]
    expected = reference.state_dict()
    names = {k if k in expected else renamed(k, rules) for k in ours.state_dict()}
    missing = sorted(set(expected) - names)
    head = f"features.{len(reference.features) - 1}."
    assert missing and all(k.startswith(head) for k in missing), missing


# Both kinds of block, with and without expansion and shortcut, in a network small enough for the default run.
SMALL = [
    ["fused", 1, 3, 1, 16, 16, 2],
    ["fused", 4, 3, 2, 16, 24, 2],
    ["mbconv", 4, 3, 2, 24, 32, 2],
    ["mbconv", 6, 5, 1, 32, 40, 2],
]


def test_a_small_stage_table_matches_torchvision(tmp_path) -> None:
    from functools import partial

    from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

    torch.manual_seed(0)
    config = {"fused": FusedMBConvConfig, "mbconv": MBConvConfig}
    reference = EfficientNet(
        [config[r[0]](*r[1:]) for r in SMALL],
        dropout=0.2,
        last_channel=64,
        norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
        num_classes=10,
    )
    assert_matches_reference(FAMILY, reference, tmp_path, stages=SMALL, last_channel=64, num_classes=10, resolution=32)


@pytest.mark.parametrize("name", fidelity_params(["efficientnet_v2_s", "efficientnet_v2_m"]))
def test_whole_network_matches_torchvision_in_memory(name: str) -> None:
    """Every layer at full width and depth, random weights paired as --weights pairs them (tests/reference.py), at 32 px."""
    with on_meta():
        model = getattr(torchvision.models, name)(weights=None)
    assert_pairs_and_matches(SPECS / f"{name}.yaml", random_reference(model), 2, resolution=32)


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", ["efficientnet_v2_s", "efficientnet_v2_m"])
def test_efficientnet_v2_matches_torchvision(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path, resolution=64)
