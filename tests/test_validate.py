"""Spec errors: every one located (file:line:col), coded, actionable, and all reported in one run."""

from pathlib import Path

import pytest

import archspec
from archspec.errors import CODES, SpecErrors

HEADER = """archspec: 1
name: t
params:
  num_classes: 10
  resolution: 32
input: [3, $resolution, $resolution]
"""


def errors_of(path: Path, same_file: bool = True) -> list:
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(path)
    for e in info.value.errors:
        assert e.code in CODES and e.location is not None and e.location.line >= 1 and e.location.column >= 1
        assert e.location.file == str(path) or not same_file
    return info.value.errors


def where(errors) -> list[tuple[str, int, int]]:
    return [(e.code, e.location.line, e.location.column) for e in errors]


def test_independent_errors_are_reported_together(write_spec):
    path = write_spec(
        HEADER
        + """layers:
  - {name: conv1, op: conv2d, out: 16, kernel: 3}
  - {name: pool, op: maxpool2d, kernel: 2}
  - {name: conv3, op: conv2d, out: 16, kernel: 3, in_channels: 32}
  - {name: fc, op: linear, out: "${num_clases}", from: pol}
  - {name: fc3, op: linear, out: "${().__class__}"}
"""
    )
    errors = errors_of(path)
    assert where(errors) == [("AS501", 10, 5), ("AS303", 11, 33), ("AS401", 11, 56), ("AS302", 12, 34)]
    assert "conv2d 'conv3' expects 32 input channels; 'pool' gives [16, 15, 15]" in errors[0].message
    assert "Did you mean 'num_classes'?" in errors[1].message
    assert "Did you mean 'pool'?" in errors[2].message
    assert str(errors[0]).startswith(f"{path}:10:5: AS501: ")


def test_structural_errors_suggest_names(write_spec):
    path = write_spec(
        HEADER
        + """layers:
  - {name: conv1, op: conv2d, out: 16, kernal: 3}
  - {name: conv2, op: conv2dd, out: 16, kernel: 3}
  - {name: fc, op: linear, out: 10, colour: red}
"""
    )
    errors = errors_of(path)
    assert [e.code for e in errors] == ["AS403", "AS204", "AS403"]
    assert "Did you mean 'kernel'?" in errors[0].message
    assert "Did you mean 'conv2d'?" in errors[1].message


def test_unknown_top_level_key_lists_allowed_keys(write_spec):
    path = write_spec(HEADER + "layer:\n  - {op: relu}\n")
    errors = errors_of(path)
    codes = {e.code for e in errors}
    assert codes == {"AS201", "AS202"}
    unknown = next(e for e in errors if e.code == "AS202")
    assert (unknown.location.line, unknown.location.column) == (7, 1)
    assert "Did you mean 'layers'" in unknown.message


@pytest.mark.parametrize(
    "layer, code",
    [
        ("{op: conv2d, out: 8, kernel: 3, repeat: 2.5}", "AS203"),
        ("{op: conv2d, out: 8, kernel: 3, repeat: -1}", "AS203"),
        ("{op: conv2d, out: 8, kernel: 3, repeat: '${1.5}'}", "AS404"),
        ("{op: conv2d, out: 8, kernel: 3, if: '${1}'}", "AS408"),
        ("{op: conv2d, out: 8, kernel: 3, groups: 5}", "AS501"),
        ("{op: conv2d, out: 8, kernel: 40}", "AS501"),
        ("{op: conv2d, out: 8, kernel: true}", "AS403"),
        ("{op: conv2d, out: 8}", "AS403"),
        ("{op: add}", "AS402"),
        ("{op: conv2d, out: '${1/0}', kernel: 3}", "AS304"),
        ("{op: conv2d, out: '${__import__}', kernel: 3}", "AS303"),
        ("{op: conv2d, out: 8, kernel: 3, repeat: 100000}", "AS404"),
        ("{op: linear, out: 100000000000}", "AS502"),
        ("{name: 1bad, op: relu}", "AS409"),
        ("{op: pad, widths: [[0, 0], [1, 1]]}", "AS501"),  # one [before, after] per sample axis
        ("{op: pad, widths: [[0, 0], [1, 1], [-1, 0]]}", "AS403"),  # no negative (cropping) widths
        ("{op: layer_scale, axis: 3}", "AS501"),
        ("{op: layer_scale, init: true}", "AS403"),
        ("{op: layernorm, axis: -4}", "AS501"),
    ],
)
def test_bad_layer_gives_located_code(write_spec, layer, code):
    path = write_spec(HEADER + f"layers:\n  - {layer}\n")
    errors = errors_of(path)
    assert code in [e.code for e in errors], errors
    assert all(e.location.line == 8 for e in errors if e.code == code)


def test_duplicate_layer_names(write_spec):
    path = write_spec(HEADER + "layers:\n  - {name: a, op: relu}\n  - {name: a, op: relu}\n")
    assert where(errors_of(path)) == [("AS407", 9, 12)]


def test_skipped_layer_may_share_a_name_with_its_alternative(write_spec):
    path = write_spec(
        HEADER
        + """layers:
  - {name: act, op: relu, if: false}
  - {name: act, op: gelu}
  - {op: flatten}
"""
    )
    graph = archspec.compile_spec(path).graph
    assert [n.op for n in graph.ops] == ["gelu", "flatten"]


def test_block_recursion_is_rejected(write_spec):
    path = write_spec(
        HEADER
        + """blocks:
  a: {layers: [{op: b}]}
  b: {layers: [{op: a}]}
layers:
  - {op: a}
"""
    )
    assert {e.code for e in errors_of(path)} == {"AS406"}


def test_parameter_types_are_checked(write_spec):
    path = write_spec(
        HEADER.replace("num_classes: 10", "num_classes: {type: int, default: ten}") + "layers:\n  - {op: relu}\n"
    )
    assert where(errors_of(path)) == [("AS208", 4, 16)]
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(write_spec(HEADER + "layers:\n  - {op: relu}\n", "ok.yaml"), {"resolution": 3.5})
    assert [e.code for e in info.value.errors] == ["AS208"]


def test_expect_mismatch_points_at_the_figure(write_spec):
    path = write_spec(
        HEADER
        + """layers:
  - {op: flatten}
  - {op: linear, out: $num_classes}
expect:
  params: 30730
  macs: 1
  output: [10]
"""
    )
    assert where(errors_of(path)) == [("AS602", 12, 9)]


def test_expect_is_not_checked_with_overrides(write_spec):
    path = write_spec(
        HEADER + "layers:\n  - {op: flatten}\n  - {op: linear, out: $num_classes}\nexpect: {output: [10]}\n"
    )
    assert archspec.compile_spec(path, {"num_classes": 5}).costs.output == (5,)


def test_thin_spec_errors(tmp_path, write_spec):
    write_spec(HEADER + "variants: {small: {resolution: 16}}\nlayers:\n  - {op: flatten}\n", "families/f.yaml")
    assert archspec.compile_spec(
        write_spec("archspec: 1\nname: s\nuse: families/f.yaml\nvariant: small\n", "s.yaml")
    ).costs.input == (3, 16, 16)
    cases = {
        "variant: smal\n": ("AS205", "Did you mean 'small'?"),
        "set: {resolutoin: 3}\n": ("AS206", "Did you mean 'resolution'?"),
        "set: {resolution: x}\n": ("AS208", "expected int"),
    }
    for extra, (code, text) in cases.items():
        path = write_spec("archspec: 1\nname: s\nuse: families/f.yaml\n" + extra, "t.yaml")
        errors = errors_of(path) if code != "AS208" else None
        if errors is None:
            with pytest.raises(SpecErrors) as info:
                archspec.compile_spec(path)
            errors = info.value.errors
            assert errors[0].location.file == str(path)
        assert errors[0].code == code and text in errors[0].message


def test_use_cannot_leave_the_spec_folder(tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "outside.yaml").write_text(HEADER + "layers:\n  - {op: relu}\n")
    path = tmp_path / "inner" / "s.yaml"
    for target in ("../outside.yaml", "/etc/passwd"):
        path.write_text(f"archspec: 1\nname: s\nuse: {target}\n")
        assert [e.code for e in errors_of(path)] == ["AS110"]


def test_use_cycles_are_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text("archspec: 1\nname: a\nuse: b.yaml\n")
    (tmp_path / "b.yaml").write_text("archspec: 1\nname: b\nuse: a.yaml\n")
    errors = errors_of(tmp_path / "a.yaml", same_file=False)
    assert [e.code for e in errors] == ["AS110"] and errors[0].location.file.endswith("b.yaml")


def test_wrong_version(write_spec):
    assert [
        e.code for e in errors_of(write_spec(HEADER.replace("archspec: 1", "archspec: 2") + "layers: [{op: relu}]\n"))
    ] == ["AS207"]


def test_every_code_is_documented_once():
    assert len(CODES) == len(set(CODES))
    assert all(code.startswith("AS") and len(code) == 5 for code in CODES)


def test_checks_report_the_authors_message(write_spec):
    path = write_spec(
        HEADER
        + """checks:
  - {that: "${resolution % 8 == 0}", message: resolution must be a multiple of 8}
blocks:
  b:
    params: {k: 3}
    checks: [{that: "${k % 2 == 1}", message: k must be odd}]
    layers: [{op: conv2d, out: 4, kernel: $k}]
layers:
  - {op: b, k: 2}
"""
    )
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(path, {"resolution": 30})
    assert [(e.code, e.location.line, e.message) for e in info.value.errors] == [
        ("AS209", 8, "check failed: resolution must be a multiple of 8"),
        ("AS209", 12, "check failed: k must be odd"),
    ]
