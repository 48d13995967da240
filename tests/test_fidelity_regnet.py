"""Fidelity of the RegNet family spec (specs/families/regnet.yaml) against torchvision.models.regnet.

The spec holds generator rows (w_0, w_a, w_m, depth, group width, bottleneck ratio, SE ratio), not stage
tables: the stages come from the quantized linear rule written in its vars. So the oracle is torchvision
itself, built on the meta device (no memory, no init cost): the variants of the table (all of them with
--exhaustive) and random generator rows drawn by hypothesis give the parameter count and the MACs
(FlopCounterMode) of torchvision's RegNet built from BlockParams.from_init_params with the same row;
regnet_y_400mf also registers torchvision's parameter and buffer shapes in torchvision's order. regnet_y_400mf is checked numerically with
torchvision's weights (at 64 px).
"""

from __future__ import annotations

from functools import partial

from hypothesis import HealthCheck, assume, given, settings, strategies as st
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
import torchvision
from torchvision.models.regnet import BlockParams, RegNet

import archspec
from reference import SPECS, assert_matches_reference, on_meta

FAMILY = SPECS / "families" / "regnet.yaml"
VARIANTS = sorted(archspec.compile_spec(FAMILY).resolved.spec.variants)
GENERATOR = ("depth", "w_0", "w_a", "w_m", "group_width", "bottleneck_ratio", "se_ratio")


def _block_params(**row: object) -> BlockParams:
    """BlockParams.from_init_params on the CPU even inside a meta-device context: it computes the widths
    with tensors and reads them back with .tolist(), which a meta tensor cannot do."""
    with torch.device("cpu"):
        return _FROM_INIT_PARAMS(**row)  # type: ignore[arg-type]


_FROM_INIT_PARAMS = BlockParams.from_init_params


def _torchvision_regnet(row: dict[str, float], num_classes: int = 1000) -> nn.Module:
    """torchvision's RegNet from a generator row, as its regnet_* builders make it (on the meta device)."""
    params = _block_params(
        depth=row["depth"],
        w_0=row["w_0"],
        w_a=row["w_a"],
        w_m=row["w_m"],
        group_width=row["group_width"],
        bottleneck_multiplier=row.get("bottleneck_ratio", 1.0),
        se_ratio=row.get("se_ratio") or None,
    )
    with on_meta():
        return RegNet(params, num_classes=num_classes, norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))


def _torchvision_builder(name: str) -> tuple[nn.Module, dict[str, object]]:
    """torchvision's own regnet_* builder on the meta device, and the generator row it passed."""
    captured: dict[str, object] = {}

    def spy(**kwargs: object) -> BlockParams:
        captured.update(kwargs)
        return _block_params(**kwargs)

    BlockParams.from_init_params = spy  # type: ignore[method-assign, assignment]
    try:
        with on_meta():
            model = getattr(torchvision.models, name)(weights=None)
    finally:
        BlockParams.from_init_params = _FROM_INIT_PARAMS  # type: ignore[method-assign]
    return model, captured


def _macs(model: nn.Module, resolution: int) -> int:
    counter = FlopCounterMode(display=False)
    model.eval()  # one sample of a 1x1 map cannot pass a training-mode batch norm; conv counts do not change
    with counter, torch.no_grad():
        model(torch.empty(1, 3, resolution, resolution, device="meta"))
    return counter.get_total_flops() // 2


def _same_as_torchvision(reference: nn.Module, ours: nn.Module) -> None:
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [b.shape for b in ours.buffers()] == [b.shape for b in reference.buffers()]


# One RegNetX and one RegNetY row by default (regnet_y_400mf is the zoo's); --exhaustive checks the
# whole table (15 rows, 1 to 7 s each on the loaded 2-core machine).
DEFAULT_VARIANTS = {"regnet_x_400mf", "regnet_y_800mf"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in DEFAULT_VARIANTS else pytest.mark.exhaustive) for n in VARIANTS]
)
def test_every_variant_matches_torchvision(name: str) -> None:
    """A row of the table is torchvision's builder's generator row, and gives its parameter count and
    MACs (statically: the built module's own count is checked by the zoo and the property tests)."""
    family = archspec.compile_spec(FAMILY).resolved.spec
    row = {k: family.params[k].default for k in GENERATOR} | family.variants[name]
    reference, captured = _torchvision_builder(name)
    assert {k: captured[k] for k in ("depth", "w_0", "w_a", "w_m", "group_width")} == {
        k: row[k] for k in ("depth", "w_0", "w_a", "w_m", "group_width")
    }
    assert (captured.get("se_ratio") or 0) == row["se_ratio"]
    costs = archspec.summary(FAMILY, variant=name)
    assert costs.params == sum(p.numel() for p in reference.parameters())
    assert costs.macs == _macs(reference, 224)


def test_regnet_y_400mf_registers_torchvision_shapes_in_order() -> None:
    """Weights pair by registration order and shape: ours must register what torchvision does, in its order
    (the projection shortcut before the transform, whose first conv has the same shape)."""
    reference, _ = _torchvision_builder("regnet_y_400mf")
    with on_meta():
        ours = archspec.build(SPECS / "regnet_y_400mf.yaml")
    _same_as_torchvision(reference, ours)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(1, 28),
    w_0=st.integers(1, 32).map(lambda k: 8 * k),
    w_a=st.integers(0, 15000).map(lambda k: k / 100),
    # The RegNet paper's design space (Radosavovic et al. 2020, sec. 3.3) has w_m in [1.5, 3]; below it the
    # quantized exponent log(w_j / w_0) / log(w_m) passes the expression language's +-64 bound (AS305).
    w_m=st.integers(150, 300).map(lambda k: k / 100),
    group_width=st.sampled_from([1, 2, 4, 8, 16, 24, 48, 56]),
    bottleneck_ratio=st.sampled_from([1.0, 0.5, 2.0]),
    se_ratio=st.sampled_from([0.0, 0.25]),
    num_classes=st.integers(1, 20),
)
def test_random_generator_rows_match_torchvision(**row: float) -> None:
    """Any generator row, not only the published ones, gives torchvision's network."""
    overrides = dict(row, resolution=32)
    try:
        reference = _torchvision_regnet(row, int(row["num_classes"]))
    except ValueError:  # groups that do not divide a width: torchvision cannot build the row either
        assume(False)
    costs = archspec.summary(FAMILY, **overrides)
    assert costs.params == sum(p.numel() for p in reference.parameters())
    assert costs.macs == _macs(reference, 32)


def test_invalid_generator_rows_are_located_errors() -> None:
    with pytest.raises(archspec.SpecErrors) as info:
        archspec.summary(FAMILY, w_0=44)
    assert [e.code for e in info.value.errors] == ["AS209"]
    assert "multiple of 8" in info.value.errors[0].message and info.value.errors[0].location.line > 1
    with pytest.raises(ValueError):  # torchvision refuses the same row
        BlockParams.from_init_params(depth=16, w_0=44, w_a=27.89, w_m=2.09, group_width=8)


@pytest.mark.slow
@pytest.mark.fidelity("regnet_y_400mf")
def test_regnet_y_400mf_matches_torchvision(tmp_path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.regnet_y_400mf(weights=None)
    # At 64 px (every stage keeps a 2x2 map or more): the weights and every op are those of 224 px, at a
    # sixth of the time (the full size took 13 to 47 s on the loaded 2-core machine).
    error = assert_matches_reference(SPECS / "regnet_y_400mf.yaml", reference, tmp_path, resolution=64)
    print(f"regnet_y_400mf: relative error {error:.3g}")
