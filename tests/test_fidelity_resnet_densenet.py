"""Fidelity of the ResNet and DenseNet family specs against torchvision (random weights).

torchvision is the oracle: counts of every thin spec equal the reference figures, every torchvision
row of the variants tables counts like torchvision's model, and a representative of each block kind
(BasicBlock, Bottleneck, grouped Bottleneck, dense layer) computes the same outputs with the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
import torch
import torchvision

import archspec
from reference import REFERENCE, SPECS, assert_matches_reference, fidelity_params, on_meta

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
DENSENETS = ["densenet121", "densenet169", "densenet201", "densenet161", "densenet264"]


@pytest.mark.parametrize(
    "family, variant",
    [
        *[("resnet", v) for v in [*RESNETS, "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"]],
        *[("densenet", v) for v in ["densenet121", "densenet169", "densenet201", "densenet161"]],
    ],
)
def test_family_variants_count_like_torchvision(family: str, variant: str) -> None:
    """Every torchvision row of the variants tables, including those without a thin spec."""
    with on_meta():  # shapes only: no memory, no initialisation
        reference = getattr(torchvision.models, variant)(weights=None, num_classes=10)
    costs = archspec.summary(SPECS / "families" / f"{family}.yaml", variant=variant, num_classes=10)
    assert costs.params == sum(p.numel() for p in reference.parameters())


def test_densenet264_is_torchvision_densenet_class() -> None:
    """densenet264 is not packaged by torchvision; its row is torchvision's DenseNet class with the paper's config."""
    with on_meta():
        reference = torchvision.models.DenseNet(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64)
    assert sum(p.numel() for p in reference.parameters()) == REFERENCE["densenet264"]["params"]


@pytest.mark.slow
@pytest.mark.parametrize("name", fidelity_params(["resnet18", "resnet50", "densenet121"]))
def test_matches_torchvision(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    assert_matches_reference(SPECS / f"{name}.yaml", model, tmp_path)


@pytest.mark.slow
def test_safetensors_weights(tmp_path: Path) -> None:
    """A .safetensors state dict comes back with sorted keys; pairing must not depend on its order."""
    torch.manual_seed(0)
    assert_matches_reference(
        SPECS / "resnet18.yaml", torchvision.models.resnet18(weights=None), tmp_path, suffix=".safetensors"
    )


def test_resnet_and_densenet_run_on_small_images() -> None:
    for name in ["resnet18", "densenet121"]:
        model = archspec.build(SPECS / f"{name}.yaml", num_classes=10, resolution=32).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_summary_json_resnet50() -> None:
    exe = shutil.which("archspec", path=str(Path(sys.executable).parent)) or shutil.which("archspec")
    assert exe, "the archspec console script is not installed"
    result = subprocess.run(
        [exe, "summary", str(SPECS / "resnet50.yaml"), "--json"], capture_output=True, text=True, check=True
    )
    data = json.loads(result.stdout)  # exactly one JSON object: json.loads rejects trailing text
    assert isinstance(data, dict)
    assert {"name", "input", "output", "params", "macs", "layers"} <= data.keys()
    assert data["name"] == "resnet50"
    assert data["params"] == REFERENCE["resnet50"]["params"]
    assert data["macs"] == REFERENCE["resnet50"]["macs"]
    assert list(data["input"]) == [3, 224, 224] and list(data["output"]) == [1000]
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]
