"""Every spec in specs/: validates, states and matches its reference figures, builds, and runs.

The figures are the reference implementations' (tests/reference_models.json, copied from
shared/reference; the language models' rows, gpt2, bert_base_uncased, llama3_2_1b and llama3_1_8b, were
measured with transformers by tests/transformers_reference.py's `figures`, which
test_fidelity_transformers.py runs again); ours are computed statically by archspec and checked against
the built module.
"""

from pathlib import Path

import pytest
import torch

import archspec
from archspec.limits import Limits
from reference import REFERENCE, SPECS

ZOO = sorted(SPECS.glob("*.yaml"))
# Specs whose reference is a module written in the tests rather than a packaged model: no entry in
# reference_models.json; the named test measures that module and compares the figures the spec states.
HAND_WRITTEN = {"unet": "tests/test_unet.py::test_thin_spec_states_the_reference_figures"}
# Above this, a real forward at full size costs tens of seconds on 2 cores: those run on the meta device.
LARGE_MACS = 5 * 10**9
# Built on the meta device, nothing is allocated: the 8B-parameter Llama passes the build's bounds.
META_LIMITS = Limits(params=10**11, memory_bytes=1 << 50)


def test_the_zoo_is_not_empty():
    assert len(ZOO) >= 2


@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
def test_spec_matches_reference_figures(spec: Path):
    compiled = archspec.compile_spec(spec)  # also checks the spec's own expect: figures
    expect = compiled.resolved.expect
    assert expect is not None and expect.params is not None and expect.macs is not None and expect.output is not None, (
        f"{spec.name} must state its reference figures in expect:"
    )
    # an image network takes --set num_classes / resolution; a language model (token ids in) its config.json fields
    assert (
        {"vocab_size", "seq_len"} if compiled.costs.input_dtype == "int64" else {"num_classes", "resolution"}
    ) <= set(compiled.resolved.spec.params)
    assert compiled.resolved.spec.description and compiled.resolved.spec.paper
    if spec.stem in HAND_WRITTEN:
        assert spec.stem not in REFERENCE, f"{spec.stem}: one reference only"
        assert compiled.resolved.expect.source, f"{spec.name}: say in expect: source: which module measured the figures"
        return
    reference = REFERENCE[spec.stem]
    costs = compiled.costs
    assert (costs.params, costs.macs, list(costs.output), list(costs.input)) == (
        reference["params"],
        reference["macs"],
        reference["output"],
        reference["input"],
    )


# Families built and run against their reference elsewhere, whose full-size build and forward here cost 12 to
# 25 s each on 2 cores: with --exhaustive. Swin: tests/test_fidelity_swin.py builds all three structures
# (narrow widths by default) and compares the outputs with torchvision's. Their figures (above) are checked
# in every run.
COVERED_BY_SIBLINGS = {"swin_t", "swin_s", "swin_v2_t"}


@pytest.mark.parametrize(
    "spec",
    [pytest.param(p, id=p.stem, marks=pytest.mark.exhaustive if p.stem in COVERED_BY_SIBLINGS else ()) for p in ZOO],
)
def test_spec_builds_and_runs(spec: Path):
    costs = archspec.summary(spec)
    tokens = costs.input_dtype == "int64"
    if costs.macs > LARGE_MACS:
        # Tens of seconds of initialisation and arithmetic on 2 cores: built and run on the meta device
        # (every module, every op, every shape); their numbers are checked in the fidelity tests, and their
        # initialisation on the smaller members of each family (test_init.py).
        with torch.device("meta"):
            module = archspec.build(spec, limits=META_LIMITS).eval()
        assert sum(p.numel() for p in module.parameters()) == costs.params
        with torch.no_grad():
            x = torch.empty(1, *costs.input, device="meta", dtype=torch.int64 if tokens else torch.float32)
            out = module(x)
        assert tuple(out.shape) == (1, *costs.output)
        return
    module = archspec.build(spec).eval()
    assert sum(p.numel() for p in module.parameters()) == costs.params
    with torch.no_grad():
        out = module(torch.randint(0, 100, (2, *costs.input)) if tokens else torch.randn(2, *costs.input))
    assert tuple(out.shape) == (2, *costs.output)
    assert torch.isfinite(out).all()
