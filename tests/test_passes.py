"""Passes keep the IR well-formed (lint after every pass) and preserve what they promise."""

from pathlib import Path

import pytest

import archspec
from archspec.ir import Graph, GraphError, Node
from archspec.passes import run_passes
from archspec.passes.counts import count
from archspec.passes.inference import DropTrainingOnly, TRAINING_ONLY
from archspec.passes.shapes import InferShapes
from archspec.registry import default_registry

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


def test_lint_explains_broken_graphs():
    graph = Graph("broken")
    graph.add(Node("input", "input", None, (), (3, 8, 8)))
    graph.add(Node("a", "relu", None, ("later",), (3, 8, 8)))
    graph.add(Node("later", "relu", None, ("input",), None))
    graph.output = "missing"
    with pytest.raises(GraphError) as info:
        graph.lint()
    text = str(info.value)
    assert "declared after it" in text and "has no shape" in text and "'missing' is not a node" in text
