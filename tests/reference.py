"""Shared helpers for fidelity tests against reference implementations (torchvision, timm).

The reference model is the oracle: we give it non-trivial batch-norm statistics and random weights,
save its state dict, build our spec from that file with `--weights` semantics, and compare outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

import archspec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
REFERENCE = json.loads((Path(__file__).parent / "reference_models.json").read_text())
TOLERANCE = 1e-5  # max |ours - reference| / max |reference|


def perturb_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def perturb_zero_tensors(module: nn.Module, seed: int = 0) -> None:
    """Fill every all-zero parameter with small random values: heads that the reference schemes
    zero-initialise (ViT, Mixer) would make every output 0 and hide any difference before them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def save_state_dict(module: nn.Module, path: Path) -> Path:
    """.pt (what torchvision publishes; keeps registration order) or .safetensors (timm; sorted keys)."""
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def assert_matches_reference(spec: str | Path, reference: nn.Module, tmp_path: Path, batch: int = 2,
                             suffix: str = ".pt", train: bool = False, **overrides: object) -> float:
    """Build `spec` (with `overrides`) from the reference's weights and check both give the same outputs
    on the same input; in train mode both also draw from the same random stream (dropout masks).
    Returns the relative error."""
    reference.train(train)
    perturb_batchnorm(reference)
    weights = save_state_dict(reference, tmp_path / f"reference{suffix}")
    ours = archspec.build(spec, weights=weights, **overrides).train(train)
    shape = archspec.summary(spec, **overrides).input
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(2)
        expected = reference(x)
        if isinstance(expected, dict):  # torchvision's segmentation models: the `out` map is the network's output
            expected = expected["out"]
        torch.manual_seed(2)
        got = ours(x)
    assert got.shape == expected.shape
    error = relative_error(got, expected)
    assert error <= TOLERANCE, f"{spec}: relative error {error:.3g} > {TOLERANCE}"
    print(f"fidelity {Path(spec).stem} ({type(reference).__name__}, {suffix}, {'train' if train else 'eval'}): "
          f"relative error {error:.3g}")
    return error
