"""Generated forward code is deterministic and golden-tested: a refactor must not change it.

To accept an intended change, regenerate with `python tests/test_codegen.py` and review the diff.
"""

from copy import deepcopy
import operator
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from torch import fx

import archspec

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "tiny_residual": ROOT / "tests/specs/residual.yaml",
    "seed_cnn_bn": ROOT / "specs/seed_cnn_bn.yaml",
    "upsampling_ops": ROOT
    / "tests/specs/upsampling_ops.yaml",  # interpolate (to another input's size), conv_transpose2d
}


def generated(spec: Path) -> str:
    return archspec.build(spec).code.strip() + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_code_matches_golden(name):
    assert generated(CASES[name]) == (GOLDEN / f"{name}.golden.py.txt").read_text()


def test_generation_is_identical_in_a_fresh_process():
    code = "import archspec, sys; sys.stdout.write(archspec.build(sys.argv[1]).code)"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code, str(CASES["tiny_residual"])], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(runs) == 1


def test_parameter_names_follow_layer_names():
    names = [n for n, _ in archspec.build(CASES["tiny_residual"]).named_parameters()]
    assert names[:3] == ["stem.weight", "stem.bias", "stage.0.conv1.weight"]
    assert "stage.1.shortcut.weight" in names and "stage.0.shortcut.weight" not in names


def test_residual_add_is_in_place_only_on_fresh_full_shape_values(write_spec):
    """`a += b` needs `a` fresh, read once and of the result's shape; a broadcast operand never grows in
    place, and a value read twice is never overwritten. Outputs and gradients equal the out-of-place sum."""
    spec = write_spec("""
archspec: 1
name: adds
input: [4, 8, 8]
layers:
  - {name: a, op: conv2d, out: 4, kernel: 1}
  - {name: pooled, op: adaptive_avgpool2d, size: 1, from: input}
  - {name: gate, op: conv2d, out: 4, kernel: 1}
  - {name: broadcast, op: add, from: [gate, a]}
  - {name: b, op: conv2d, out: 4, kernel: 1, from: input}
  - {name: c, op: conv2d, out: 4, kernel: 1, from: b}
  - {name: twice, op: add, from: [b, c]}
  - {name: e, op: conv2d, out: 4, kernel: 1, from: input}
  - {name: doubled, op: add, from: [e, e]}
  - {name: d, op: conv2d, out: 4, kernel: 1, from: twice}
  - {name: tail, op: add, from: [d, broadcast, twice, doubled]}
""")
    model = archspec.build(spec)
    lines = [line.strip() for line in model.code.splitlines()]
    assert "a += gate;  broadcast = a;  a = gate = None" in lines  # the conv output, not the [4, 1, 1] gate
    assert "c += b;  twice = c;  c = b = None" in lines  # b is also read by c; the second operand is free
    assert "doubled = e + e;  e = None" in lines  # read twice by one add: not overwritable
    assert any(line.startswith("d += broadcast;  tail_part = d") for line in lines)
    assert any(line.startswith("tail_part += twice;  tail_part_1 = tail_part") for line in lines)
    assert any(line.startswith("tail_part_1 += doubled;  tail = tail_part_1") for line in lines)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    reference = _out_of_place(model)
    assert "+=" not in reference.code
    got, expected = model(x), reference(x)
    torch.testing.assert_close(got, expected)
    (grad,) = torch.autograd.grad(got.square().sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(grad, expected_grad)


def _out_of_place(model: fx.GraphModule) -> fx.GraphModule:
    """The same module with every `a += b` written `a + b`."""
    copy = deepcopy(model)
    for node in copy.graph.nodes:
        if node.target is operator.iadd:
            node.target = operator.add
    copy.recompile()
    return copy


if __name__ == "__main__":
    for name, spec in CASES.items():
        (GOLDEN / f"{name}.golden.py.txt").write_text(generated(spec))
