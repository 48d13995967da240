"""archspec.views.fingerprint: a hash of what the network computes, not of how the spec is written."""

from pathlib import Path
import textwrap

import pytest

from archspec import pipeline
from archspec.cli import main
from archspec.registry import default_registry
from archspec.views.fingerprint import artifact_key, canonical_form, fingerprint

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = default_registry()

BASE = """\
archspec: 1
name: tiny
input: [3, 16, 16]
blocks:
  unit:
    params: {width: {type: int}}
    layers:
      - {name: conv, op: conv2d, out: $width, kernel: 3, padding: 1}
      - {op: relu}
layers:
  - {name: stages, op: unit, repeat: 2, width: 8}
  - {op: adaptive_avgpool2d, size: 1}
  - {op: flatten}
  - {name: head, op: linear, out: 10}
"""

# The same network, written another way: block style, comments, other key order, defaults spelled out.
REFORMATTED = """\
# a comment
name: tiny
archspec: 1
layers:
  - name: stages
    repeat: 2
    width: 8     # channels
    op: unit
  - op: adaptive_avgpool2d
    size: 1
  - op: flatten
  - op: linear
    name: head
    out: 10
    bias: true   # the default, written out
input: [3, 16, 16]
blocks:
  unit:
    layers:
      - {padding: 1, op: conv2d, kernel: 3, out: $width, name: conv, stride: 1}
      - {op: relu}
    params: {width: {type: int}}
"""

# The same network again without a block or a repeat, and every layer named differently.
FLAT = """\
archspec: 1
name: other_name
input: [3, 16, 16]
layers:
  - {name: c1, op: conv2d, out: 8, kernel: 3, padding: 1}
  - {name: r1, op: relu}
  - {name: c2, op: conv2d, out: 8, kernel: 3, padding: 1}
  - {name: r2, op: relu}
  - {name: pool, op: adaptive_avgpool2d, size: 1}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out: 10}
"""


def compile_text(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return pipeline.compile_spec(path, registry=REGISTRY)


def print_of(tmp_path, text, name="spec.yaml"):
    return fingerprint(compile_text(tmp_path, text, name).graph)


def test_formatting_key_order_comments_and_defaults_do_not_count(tmp_path):
    assert print_of(tmp_path, BASE, "a.yaml") == print_of(tmp_path, REFORMATTED, "b.yaml")


def test_layer_names_do_not_count_but_the_artifact_key_sees_them(tmp_path):
    renamed = BASE.replace("{op: relu}", "{name: act, op: relu}")
    a, b = compile_text(tmp_path, BASE, "a.yaml"), compile_text(tmp_path, renamed, "b.yaml")
    assert {n.name for n in a.graph} != {n.name for n in b.graph}
    assert fingerprint(a.graph) == fingerprint(b.graph)
    # Names become state-dict keys and module attributes: a compiled artifact depends on them.
    assert artifact_key(a.graph, "torch") != artifact_key(b.graph, "torch")
    assert artifact_key(a.graph, "torch") != artifact_key(a.graph, "onnx")
    assert artifact_key(a.graph, "torch", {"precision": "fp16"}) != artifact_key(a.graph, "torch")


def test_two_specs_building_the_same_network_share_it(tmp_path):
    assert print_of(tmp_path, BASE, "a.yaml") == print_of(tmp_path, FLAT, "b.yaml")
    thin = pipeline.compile_spec(ROOT / "specs/seed_cnn.yaml", registry=REGISTRY)
    family = pipeline.compile_spec(ROOT / "specs/families/seed_cnn.yaml", registry=REGISTRY, variant="seed_cnn")
    assert fingerprint(thin.graph) == fingerprint(family.graph)
    bn = pipeline.compile_spec(ROOT / "specs/seed_cnn_bn.yaml", registry=REGISTRY)
    assert fingerprint(bn.graph) != fingerprint(thin.graph)


@pytest.mark.parametrize(
    "change",
    [
        ("kernel: 3, padding: 1}", "kernel: 5, padding: 2}"),  # same shapes, another kernel
        ("out: 10}", "out: 11}"),
        ("input: [3, 16, 16]", "input: [3, 18, 18]"),
        ("repeat: 2", "repeat: 3"),
        ("{op: relu}", "{op: gelu}"),
    ],
)
def test_a_change_of_the_network_changes_it(tmp_path, change):
    old, new = change
    assert old in BASE
    assert print_of(tmp_path, BASE, "a.yaml") != print_of(tmp_path, BASE.replace(old, new), "b.yaml")


BRANCHES = """\
archspec: 1
name: branches
input: [4, 8, 8]
layers:
  - {name: stem, op: conv2d, out: 8, kernel: 1}
  {first}
  {second}
  - {name: merged, op: concat, from: [left, right]}
  - {name: head, op: conv2d, out: 2, kernel: 1}
"""
LEFT = "- {name: left, op: conv2d, out: 4, kernel: 3, padding: 1, from: stem}"
RIGHT = "- {name: right, op: conv2d, out: 6, kernel: 1, from: stem}"


def test_the_order_branches_are_declared_in_does_not_count(tmp_path):
    one = BRANCHES.replace("{first}", LEFT).replace("{second}", RIGHT)
    two = BRANCHES.replace("{first}", RIGHT).replace("{second}", LEFT)
    a, b = compile_text(tmp_path, one, "a.yaml"), compile_text(tmp_path, two, "b.yaml")
    assert [n.name for n in a.graph] != [n.name for n in b.graph]
    assert canonical_form(a.graph) == canonical_form(b.graph)
    # The order of a merge's inputs is part of the network: concat [right, left] is another one.
    swapped = one.replace("from: [left, right]", "from: [right, left]")
    assert print_of(tmp_path, swapped, "c.yaml") != fingerprint(a.graph)


def test_cli_prints_it_and_it_is_stable_across_runs(capsys):
    code = main(["fingerprint", str(ROOT / "specs/lenet5.yaml")])
    out = capsys.readouterr().out
    compiled = pipeline.compile_spec(ROOT / "specs/lenet5.yaml", registry=REGISTRY)
    assert code == 0 and out.split()[0] == fingerprint(compiled.graph)
    # Golden: the canonical form is versioned (FORMAT); if this changes, so must FORMAT, on purpose.
    assert out.split()[0] == "86d164e11a4636e8c3adec2a60d4d76983d664dd940d3d53a64b7b8e2bcf292f"
