"""Fidelity of the Swin family (specs/families/swin.yaml) against torchvision's SwinTransformer.

Counts at full size come from reference_models.json (tests/test_zoo.py). Here the outputs: the spec is
built with `--weights` from torchvision's model and must give its outputs (eval mode, relative error at
most 1e-5). Every parameter gets non-trivial values first (the zero biases, the unit norms, and V2's k part
of the qkv bias, which torchvision ignores in the forward pass and the spec must too). At 64 px the first
two stages are padded to whole windows and shifted (mask and roll), the last two are one window, unshifted:
every path of shifted_window_attention runs. The buffers torchvision keeps (relative_position_index, V2's
relative_coords_table) are compared with the ones the spec computes while the weights load.

V1 and V2 run at a small width (torchvision's class with swin_t's structure, embed_dim 16), and the named
swin_t, swin_s and swin_v2_t whole at 64 px (3 to 4 s each on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

from archspec.cli import main
from reference import SPECS, assert_matches_reference, fidelity_params

RESOLUTION = 64
NARROW = {"embed_dim": 16, "num_heads": [1, 2, 4, 8], "depths": [2, 2, 2, 2]}


def _perturb(reference: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return reference


def _narrow(v2: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    extra = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if v2 else {}
    return _perturb(
        SwinTransformer(
            patch_size=[4, 4], window_size=[8, 8] if v2 else [7, 7], stochastic_depth_prob=0.2, **NARROW, **extra
        )
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_narrow_swin_matches_torchvision(v2: bool, tmp_path: Path) -> None:
    reference = _narrow(v2)
    if v2:  # torchvision zeroes the k third of the qkv bias in forward: the checkpoint's values must be ignored
        assert float(reference.features[1][0].attn.qkv.bias.detach()[16:32].abs().min()) > 0
    assert_matches_reference(
        SPECS / ("swin_v2_t.yaml" if v2 else "swin_t.yaml"), reference, tmp_path, resolution=RESOLUTION, **NARROW
    )


@pytest.mark.parametrize("variant", fidelity_params(["swin_t", "swin_s", "swin_v2_t"]))
def test_swin_variants_match_torchvision(variant: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = _perturb(getattr(torchvision.models, variant)(weights=None))
    assert_matches_reference(SPECS / f"{variant}.yaml", reference, tmp_path, resolution=RESOLUTION)


def _convert(weights: Path, tmp_path: Path) -> list[str]:
    """`archspec convert-weights`: the pairing of --weights, without building the weights' values."""
    sets = [a for k, v in {"resolution": RESOLUTION, **NARROW}.items() for a in ("--set", f"{k}={v}")]
    return [
        "convert-weights",
        str(SPECS / "swin_t.yaml"),
        str(weights),
        "-o",
        str(tmp_path / "swin.safetensors"),
        *sets,
    ]


def test_checkpoint_buffers_are_compared_or_skipped(tmp_path: Path, capsys) -> None:
    """torchvision's relative_position_index buffers pair by name with the spec's gather indices: compared,
    never loaded, and reported; a wrong one is a located AS708; an index table the spec does not have is
    skipped and named, and every tensor after it still pairs."""
    state = _narrow(False).state_dict()
    path = tmp_path / "ref.pth"
    torch.save(state, path)
    assert main(_convert(path, tmp_path)) == 0
    out = capsys.readouterr()
    assert "8 buffer(s) the spec computes match the checkpoint's" in out.out + out.err

    # A checkpoint whose first index table differs: located at the spec's gather layer.
    wrong = dict(state)
    key = "features.1.0.attn.relative_position_index"
    wrong[key] = wrong[key].flip(0)
    torch.save(wrong, path)
    assert main(_convert(path, tmp_path)) == 1
    err = capsys.readouterr().err
    assert "AS708" in err and "swin.yaml:" in err and key in err and "Traceback" not in err

    # An extra integer table the spec lacks, inserted early: skipped and reported; pairing goes on.
    extra = dict(list(state.items())[:3] + [("features.0.extra_index", torch.arange(5))] + list(state.items())[3:])
    torch.save(extra, path)
    assert main(_convert(path, tmp_path)) == 0
    out = capsys.readouterr()
    assert "skipped 1 checkpoint buffer(s)" in out.out + out.err and "'features.0.extra_index'" in out.out + out.err
