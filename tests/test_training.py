"""Training behaviour against the reference: with the same weights, a train-mode step gives the same
loss and the same gradients as torchvision's model (this also covers the in-place activations codegen
emits after conv, batch norm, linear and add)."""

from pathlib import Path

import torch
import torchvision

import archspec
from archspec.backends.torch.weights import match_state_dict
from reference import SPECS, save_state_dict


def test_resnet18_train_step_matches_torchvision(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None, num_classes=10).train()
    weights = save_state_dict(reference, tmp_path / "r18.pt")
    ours = archspec.build(SPECS / "resnet18.yaml", weights=weights, num_classes=10, resolution=64).train()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 2, 3, 4])
    losses = []
    for model in (reference, ours):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    ours_params = dict(ours.named_parameters())
    pairs = match_state_dict(ours_params, dict(reference.named_parameters()))
    reference_grads = {id(p): p.grad for p in reference.parameters()}
    assert len(pairs) == len(ours_params) == 62
    for name, ref_param in pairs.items():
        torch.testing.assert_close(ours_params[name].grad, reference_grads[id(ref_param)], rtol=1e-4, atol=1e-5)
    # running statistics moved the same way
    torch.testing.assert_close(ours.state_dict()["bn1.running_mean"], reference.state_dict()["bn1.running_mean"])
