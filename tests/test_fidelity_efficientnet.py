"""Fidelity of the EfficientNet (v1) specs against torchvision.models.efficientnet.

Every thin spec b0..b7 is checked statically (parameters, MACs and shapes equal the reference figures;
parameter and buffer shapes, in state-dict order, equal torchvision's; batch-norm eps/momentum, dropout
and the stochastic-depth schedule equal torchvision's), on the meta device, and numerically, from the
same two modules: ours takes random weights and batch-norm statistics given to torchvision's, as
`--weights` pairs them, and both compute the same outputs in eval mode at 32 px (tests/reference.py,
`assert_pairs_and_matches`). b0 and b1 are also checked through a weights file with torchvision's own
initialisation.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
import torchvision

import archspec
from archspec.backends.torch.modules import DropPath
from reference import (
    SPECS,
    assert_matches_reference,
    assert_pairs_and_matches,
    build_on_meta,
    fidelity_params,
    on_meta,
    random_reference,
)

NAMES = [f"efficientnet_b{k}" for k in range(8)]


def _residual_drop_probs(model: nn.Module) -> list[float]:
    """Stochastic-depth probabilities of the blocks that use them, in network order."""
    if isinstance(model, torchvision.models.EfficientNet):  # torchvision keeps one in every block
        return [b.stochastic_depth.p for stage in model.features[1:-1] for b in stage if b.use_res_connect]
    return [m.p for m in model.modules() if isinstance(m, DropPath)]


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(NAMES))
def test_structure_and_outputs_match_torchvision(name: str) -> None:
    with on_meta():  # shapes and hyper-parameters, and no initialisation: the numbers come below
        reference = getattr(torchvision.models, name)(weights=None)
    built = ours, _ = build_on_meta(SPECS / f"{name}.yaml", resolution=32)  # every layer runs at 32 px (1x1 last)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [b.shape for b in ours.buffers()] == [b.shape for b in reference.buffers()]
    norms = lambda m: [(x.eps, x.momentum) for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert norms(ours) == norms(reference)
    dropouts = lambda m: [x.p for x in m.modules() if isinstance(x, nn.Dropout)]
    assert dropouts(ours) == dropouts(reference)
    assert _residual_drop_probs(ours) == pytest.approx(_residual_drop_probs(reference), abs=1e-12)
    assert_pairs_and_matches(SPECS / f"{name}.yaml", random_reference(reference), built=built, resolution=32)


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(["efficientnet_b0", "efficientnet_b1"]))
def test_efficientnet_matches_torchvision(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    error = assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path)
    print(f"{name}: relative error {error:.3g}")


def test_efficientnet_b0_trains_with_stochastic_depth() -> None:
    """In training mode drop-path and dropout are active; the model still runs on small inputs."""
    model = archspec.build(SPECS / "efficientnet_b0.yaml", num_classes=10, resolution=32).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
