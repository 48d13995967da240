"""The short cuts that make archspec.build as quick as the constructors it reproduces (benchmarks/build_speed.py)
must not change what is built: PyTorch's default init is skipped only where init: rules overwrite every
parameter of a conv or linear, and the forward code kept from a build of the same compiled graph is used only
for the same fx graph."""

from __future__ import annotations

import linecache
from pathlib import Path

import pytest
import torch
from torch import fx, nn
import torch.nn.functional as F

import archspec
from archspec.backends.torch import codegen
from archspec.backends.torch.lowering import LOWERINGS, Call

SPEC = """\
archspec: 1
name: tiny
input: [3, 8, 8]
init:
  - {op: conv2d, weight: {constant: {value: 0.25}}}
  - {layer: fc, weight: {constant: {value: -0.5}}, bias: zeros}
layers:
  - {name: conv, op: conv2d, out: 4, kernel: 3}
  - {op: relu}
  - {op: flatten}
  - {name: fc, op: linear, out: 5}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    return path


def test_covered_layers_are_plain_modules_filled_by_their_rules(spec: Path) -> None:
    module = archspec.build(spec)
    assert type(module.conv) is nn.Conv2d and type(module.fc) is nn.Linear  # not the no-reset subclass
    assert torch.equal(module.conv.weight, torch.full_like(module.conv.weight, 0.25))
    assert torch.equal(module.fc.weight, torch.full_like(module.fc.weight, -0.5))
    assert torch.equal(module.fc.bias, torch.zeros(5))
    module.conv.reset_parameters()  # the class's own method again: PyTorch's default init
    assert module.conv.weight.std() > 0


def test_a_parameter_left_to_the_default_gets_pytorchs_values(spec: Path) -> None:
    """The conv's bias has no rule: it gets what nn.Conv2d's constructor draws first from the build's seed."""
    module = archspec.build(spec, seed=3)
    torch.manual_seed(3)
    assert torch.equal(module.conv.bias, nn.Conv2d(3, 4, 3).bias)


def test_kept_forward_code_is_used_for_the_same_graph_only(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = fx.Graph.python_code

    def counted(self: fx.Graph, *args: object, **kwargs: object) -> object:
        calls.append(self)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fx.Graph, "python_code", counted)
    graph = archspec.compile_spec(spec).graph
    x = torch.randn(2, 3, 8, 8)
    first = codegen.generate(graph, LOWERINGS, "tiny")
    assert len(calls) == 1
    second = codegen.generate(graph, LOWERINGS, "tiny")
    assert len(calls) == 1 and second.code == first.code  # kept
    assert "python_code" not in vars(second.graph)  # the graph's own method again
    kept = type(second).forward.__code__
    assert kept is not type(first).forward.__code__  # a code object per module, as fx's own compile gives
    assert (
        "".join(linecache.getlines(kept.co_filename)).rstrip() == second.code.rstrip()
    )  # tracebacks show the generated lines
    assert torch.equal(second(x), F.linear(F.relu(second.conv(x)).flatten(1), second.fc.weight, second.fc.bias))
    # A lowering that answers differently the next time (relu -> tanh) gets code of its own.
    table = {**LOWERINGS, "relu": lambda node, shapes: Call(torch.tanh)}
    third = codegen.generate(graph, table, "tiny")
    assert len(calls) == 2 and "tanh" in third.code
    third.load_state_dict(first.state_dict())
    hidden = first.conv(x)
    assert torch.allclose(third(x), F.linear(torch.tanh(hidden).flatten(1), first.fc.weight, first.fc.bias))
    # An edit of a built module's graph is compiled afresh.
    for node in second.graph.nodes:
        if node.target is F.relu:
            node.target = F.silu  # takes the inplace=True relu was given
    second.recompile()
    assert "silu" in second.code and torch.allclose(
        second(x), F.linear(F.silu(second.conv(x)).flatten(1), second.fc.weight, second.fc.bias)
    )


def test_optimized_and_meta_builds_skip_init_but_keep_the_weights(spec: Path) -> None:
    plain = archspec.build(spec, seed=1)
    fast = archspec.build(spec, seed=1, optimize=True)
    assert fast.state_dict().keys() <= plain.state_dict().keys()
    for name, tensor in fast.state_dict().items():
        assert torch.equal(tensor, plain.state_dict()[name]), name
    with torch.device("meta"):
        meta = codegen.generate(archspec.compile_spec(spec).graph, LOWERINGS, "tiny", fill=False)
    assert all(p.is_meta for p in meta.parameters())
