"""Passes keep the IR well-formed (lint after every pass) and preserve what they promise."""

from pathlib import Path

import pytest
import torch
import torchvision

import archspec
from archspec.backends.torch.modules import DropPath
from archspec.ir import Graph, GraphError, Node
from archspec.passes import run_passes
from archspec.passes.counts import count
from archspec.passes.inference import TRAINING_ONLY, DropTrainingOnly, batchnorm_folds, optimize
from archspec.passes.shapes import InferShapes
from archspec.registry import default_registry
from reference import TOLERANCE, perturb_batchnorm, relative_error, save_state_dict

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + [ROOT / "tests/specs/residual.yaml"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_passes_preserve_shapes_and_counts(spec):
    registry = default_registry()
    compiled = archspec.compile_spec(spec)
    graph = compiled.graph
    reinferred = run_passes(graph, [InferShapes(registry)], lint=True)
    assert [n.shape for n in reinferred] == [n.shape for n in graph]
    slim = run_passes(graph, [DropTrainingOnly(), InferShapes(registry)], lint=True)
    assert not any(n.op in TRAINING_ONLY for n in slim)
    assert slim.output_shape == graph.output_shape
    before, after = compiled.costs, count(slim, registry)
    assert (after.params, after.macs) == (before.params, before.macs)
    assert len(graph) == len(list(compiled.graph))  # passes never mutate their input


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_inference_plan_folds_every_foldable_batchnorm(spec):
    """optimize lints the IR after each pass; what it folds changes the counts by exactly the bias it
    adds and the affine parameters it removes, and no foldable pair is left."""
    registry = default_registry()
    compiled = archspec.compile_spec(spec)
    plan = optimize(compiled.graph, registry, lint=True)
    graph = plan.graph
    assert not any(n.op in TRAINING_ONLY for n in graph) and batchnorm_folds(graph) == ()
    assert graph.output_shape == compiled.graph.output_shape and plan.source is compiled.graph
    channels = {f.bn: compiled.graph.node(f.bn).shape[0] for f in plan.folds}  # type: ignore[index]
    added = sum(channels[f.bn] * ((not f.conv_bias) - 2 * f.affine) for f in plan.folds)
    after = count(graph, registry)
    assert (after.params, after.macs) == (compiled.costs.params + added, compiled.costs.macs)
    assert all(graph.node(f.conv).params.bias for f in plan.folds)  # type: ignore[union-attr]


# Reduced resolutions keep these cheap; every BN, dropout and drop-path kind of the zoo is in them.
EQUIVALENCE = {"resnet50": 32, "densenet121": 32, "efficientnet_b0": 32, "vgg16_bn": 32}


@pytest.mark.parametrize("name", sorted(EQUIVALENCE))
def test_optimized_build_computes_the_same_function(name, tmp_path):
    """With non-trivial batch-norm statistics loaded through --weights, the optimized module (folded,
    no dropout, channels_last) matches the eval-mode unoptimized one, and its parameters are the counts."""
    spec, resolution = ROOT / "specs" / f"{name}.yaml", EQUIVALENCE[name]
    plain = archspec.build(spec, resolution=resolution).eval()
    perturb_batchnorm(plain)
    weights = save_state_dict(plain, tmp_path / "perturbed.pt")
    fast = archspec.build(spec, resolution=resolution, weights=weights, optimize=True)
    norms = [m for m in fast.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert not fast.training and bool(norms) == (name == "densenet121")  # DenseNet's pre-activation norms stay
    assert not any(isinstance(m, (torch.nn.Dropout, DropPath)) for m in fast.modules())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    x = torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        error = relative_error(fast(x), plain(x))
    print(f"optimize {name}: relative error {error:.3g}")
    assert error <= TOLERANCE
    assert (
        sum(p.numel() for p in fast.parameters()) == archspec.summary(spec, resolution=resolution, optimize=True).params
    )


def test_optimized_build_from_reference_checkpoint_matches_torchvision(tmp_path):
    reference = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    perturb_batchnorm(reference)
    weights = save_state_dict(reference, tmp_path / "resnet18.pt")
    ours = archspec.build(ROOT / "specs/resnet18.yaml", weights=weights, optimize=True, num_classes=10, resolution=32)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_error(ours(x), reference(x)) <= TOLERANCE


def test_lint_explains_broken_graphs():
    graph = Graph("broken")
    graph.add(Node("input", "input", None, (), (3, 8, 8)))
    graph.add(Node("a", "relu", None, ("later",), (3, 8, 8)))
    graph.add(Node("later", "relu", None, ("input",), None))
    graph.outputs = ("missing",)
    with pytest.raises(GraphError) as info:
        graph.lint()
    text = str(info.value)
    assert "declared after it" in text and "has no shape" in text and "'missing' is not a node" in text
