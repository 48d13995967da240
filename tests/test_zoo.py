"""Every spec in specs/: validates, states and matches its reference figures, builds, and runs.

The figures are the reference implementations' (tests/reference_models.json, copied from
shared/reference); ours are computed statically by archspec and checked against the built module.
"""

from pathlib import Path

import pytest
import torch

import archspec
from reference import REFERENCE, SPECS

ZOO = sorted(SPECS.glob("*.yaml"))
# Specs whose reference is a module written in the tests rather than a packaged model: no entry in
# reference_models.json; the named test measures that module and compares the figures the spec states.
HAND_WRITTEN = {"unet": "tests/test_unet.py::test_thin_spec_states_the_reference_figures"}
# Above this, a real forward at full size costs tens of seconds on 2 cores: those run on the meta device.
LARGE_MACS = 5 * 10**9


def test_the_zoo_is_not_empty():
    assert len(ZOO) >= 2


@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
def test_spec_matches_reference_figures(spec: Path):
    compiled = archspec.compile_spec(spec)  # also checks the spec's own expect: figures
    expect = compiled.resolved.expect
    assert expect is not None and expect.params is not None and expect.macs is not None and expect.output is not None, \
        f"{spec.name} must state its reference figures in expect:"
    assert {"num_classes", "resolution"} <= set(compiled.resolved.spec.params)
    assert compiled.resolved.spec.description and compiled.resolved.spec.paper
    if spec.stem in HAND_WRITTEN:
        assert spec.stem not in REFERENCE, f"{spec.stem}: one reference only"
        assert compiled.resolved.expect.source, f"{spec.name}: say in expect: source: which module measured the figures"
        return
    reference = REFERENCE[spec.stem]
    costs = compiled.costs
    assert (costs.params, costs.macs, list(costs.output), list(costs.input)) == (
        reference["params"], reference["macs"], reference["output"], reference["input"])


# Families built and run against their reference elsewhere, whose full-size build and forward here cost 12 to
# 25 s each on 2 cores: with --exhaustive. Swin: tests/test_fidelity_swin.py builds all three structures
# (narrow widths by default) and compares the outputs with torchvision's. Their figures (above) are checked
# in every run.
COVERED_BY_SIBLINGS = {"swin_t", "swin_s", "swin_v2_t"}


@pytest.mark.parametrize("spec", [pytest.param(p, id=p.stem, marks=pytest.mark.exhaustive if p.stem in COVERED_BY_SIBLINGS
                                               else ()) for p in ZOO])
def test_spec_builds_and_runs(spec: Path):
    costs = archspec.summary(spec)
    if costs.macs > LARGE_MACS:
        # Tens of seconds of initialisation and arithmetic on 2 cores: built and run on the meta device
        # (every module, every op, every shape); their numbers are checked in the fidelity tests, and their
        # initialisation on the smaller members of each family (test_init.py).
        with torch.device("meta"):
            module = archspec.build(spec).eval()
        assert sum(p.numel() for p in module.parameters()) == costs.params
        with torch.no_grad():
            out = module(torch.empty(1, *costs.input, device="meta"))
        assert tuple(out.shape) == (1, *costs.output)
        return
    module = archspec.build(spec).eval()
    assert sum(p.numel() for p in module.parameters()) == costs.params
    with torch.no_grad():
        out = module(torch.randn(2, *costs.input))
    assert tuple(out.shape) == (2, *costs.output)
    assert torch.isfinite(out).all()
