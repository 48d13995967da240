"""Fidelity of the VGG and LeNet-5 specs against independent torch implementations.

torchvision's VGG is the oracle for configurations A, D (with and without batch norm); for A-LRN and C,
which torchvision does not package, the oracle is torchvision's own VGG class built from its
`make_layers` with the paper's modification applied by hand. LeNet-5 is checked against a LeNet
written directly in torch.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
import torchvision
from torchvision.models.vgg import VGG, cfgs, make_layers

import archspec
from reference import REFERENCE, SPECS, assert_matches_reference, on_meta

VGG_SPECS = ["vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19", "vgg11_bn", "vgg16_bn"]


@pytest.mark.parametrize(
    "variant", ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
)
def test_family_variants_count_like_torchvision(variant: str) -> None:
    """Every torchvision row of the variants table, including those without a thin spec."""
    with on_meta():  # shapes only: no memory, no initialisation
        reference = getattr(torchvision.models, variant)(weights=None, num_classes=10)
    costs = archspec.summary(SPECS / "families" / "vgg.yaml", variant=variant, num_classes=10)
    assert costs.params == sum(p.numel() for p in reference.parameters())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, suffix",
    [
        pytest.param(name, suffix, marks=pytest.mark.fidelity(name))
        for name, suffix in [("vgg11", ".pt"), ("vgg11_bn", ".safetensors"), ("vgg16_bn", ".pt")]
    ],
)
def test_vgg_matches_torchvision(name: str, suffix: str, tmp_path) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    assert_matches_reference(SPECS / f"{name}.yaml", reference, tmp_path, batch=1, suffix=suffix)


@pytest.mark.slow
@pytest.mark.fidelity("vgg11_lrn")
def test_vgg11_lrn_matches_torchvision_class(tmp_path) -> None:
    torch.manual_seed(0)
    features = make_layers(cfgs["A"], batch_norm=False)
    assert isinstance(features[1], nn.ReLU)
    features.insert(2, nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
    assert_matches_reference(SPECS / "vgg11_lrn.yaml", VGG(features), tmp_path, batch=1)


@pytest.mark.slow
@pytest.mark.fidelity("vgg16_c")
def test_vgg16_c_matches_torchvision_class(tmp_path) -> None:
    torch.manual_seed(0)
    features = make_layers(cfgs["D"], batch_norm=False)
    convs = [k for k, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    for k in (convs[6], convs[9], convs[12]):  # the third conv of blocks 3, 4 and 5
        features[k] = nn.Conv2d(features[k].in_channels, features[k].out_channels, kernel_size=1, padding=0)
    reference = VGG(features)  # initialises the replaced convs too
    assert_matches_reference(SPECS / "vgg16_c.yaml", reference, tmp_path, batch=1)


def test_vgg_with_overrides_runs_on_small_images() -> None:
    model = archspec.build(SPECS / "vgg11_bn.yaml", num_classes=10, resolution=32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    costs = archspec.summary(SPECS / "vgg11_bn.yaml", num_classes=10, resolution=32)
    assert costs.params == REFERENCE["vgg11_bn"]["params"] - 990 * 4097  # only the last layer shrinks
    assert list(costs.output) == [10]


class LeNet5(nn.Module):
    """LeNet-5 as commonly written in PyTorch for 3x32x32 inputs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


@pytest.mark.fidelity("lenet5")
def test_lenet5_matches_handwritten_torch(tmp_path) -> None:
    torch.manual_seed(0)
    assert_matches_reference(SPECS / "lenet5.yaml", LeNet5(), tmp_path)
