"""archspec diff: layers aligned by scope and name; added, removed, changed; params/MACs per stage."""

import json
from pathlib import Path
import textwrap

from archspec import pipeline
from archspec.cli import main
from archspec.registry import default_registry
from archspec.views.diff import diff, text

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((Path(__file__).parent / "reference_models.json").read_text())
REGISTRY = default_registry()


def run_json(capsys, monkeypatch, *argv):
    monkeypatch.chdir(ROOT)  # bare names resolve to ./specs/NAME.yaml
    code = main(["diff", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_seed_cnn_bn_adds_exactly_the_three_batch_norms(capsys, monkeypatch):
    d = run_json(capsys, monkeypatch, "seed_cnn", "seed_cnn_bn")
    assert [(l["name"], l["op"]) for l in d["added"]] == [(f"features.{k}.bn", "batchnorm") for k in range(3)]
    assert d["removed"] == [] and d["changed"] == []
    delta = REFERENCE["seed_cnn_bn"]["params"] - REFERENCE["seed_cnn"]["params"]
    assert d["total"]["params_delta"] == delta == sum(l["params"] for l in d["added"]) == 84
    assert d["total"]["macs_delta"] == 0
    stages = {s["stage"]: s for s in d["stages"]}
    assert stages["features"]["params_delta"] == delta and stages["classifier"]["params_delta"] == 0


def test_vgg16_c_to_d_changes_three_convs_from_1x1_to_3x3(capsys, monkeypatch):
    d = run_json(capsys, monkeypatch, "vgg16_c", "vgg16")
    assert d["added"] == [] and d["removed"] == []
    assert len(d["changed"]) == 3
    for change in d["changed"]:
        assert change["a"]["op"] == change["b"]["op"] == "conv2d"
        assert change["arguments"]["kernel"] == [1, 3]
    assert d["total"]["params_delta"] == REFERENCE["vgg16"]["params"] - REFERENCE["vgg16_c"]["params"]
    assert d["total"]["macs_delta"] == REFERENCE["vgg16"]["macs"] - REFERENCE["vgg16_c"]["macs"]
    assert sum(s["params_delta"] for s in d["stages"]) == d["total"]["params_delta"]


SPEC = """\
archspec: 1
name: net
input: [3, 8, 8]
layers:
  - {op: conv2d, out: 4, kernel: 3}
  - {op: relu}
  - {op: conv2d, out: 4, kernel: 3}
  - {op: relu}
  - {op: flatten}
  - {name: head, op: linear, out: 2}
"""


def compiled(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return pipeline.compile_spec(path, registry=REGISTRY)


def test_an_inserted_unnamed_layer_is_one_addition_not_a_cascade_of_renames(tmp_path):
    a = compiled(tmp_path, "a", SPEC)
    b = compiled(tmp_path, "b", SPEC.replace("  - {op: relu}\n", "  - {op: relu}\n  - {op: relu}\n", 1))
    # Lowering spells B's later relus relu_2, not relu_1: a name-only diff would see renames.
    assert "relu_2" in b.graph and "relu_2" not in a.graph
    d = diff(a.graph, a.costs, b.graph, b.costs)
    assert [l.op for l in d.added] == ["relu"] and not d.removed and not d.changed


def test_changed_arguments_and_shapes_and_removed_layers(tmp_path):
    a = compiled(tmp_path, "a", SPEC)
    b = compiled(
        tmp_path,
        "b",
        SPEC.replace(
            "{op: conv2d, out: 4, kernel: 3}\n  - {op: relu}\n  - {op: flatten}",
            "{op: conv2d, out: 6, kernel: 3}\n  - {op: flatten}",
        ),
    )
    d = diff(a.graph, a.costs, b.graph, b.costs)
    assert [l.name for l in d.removed] == ["relu_1"]
    by_name = {c.b.name: c for c in d.changed}
    assert by_name["conv2d_1"].arguments == {"out": (4, 6)}
    assert by_name["flatten"].b.output == (6 * 4 * 4,)
    assert by_name["head"].a.output == by_name["head"].b.output == (2,) and by_name["head"].arguments == {}
    assert by_name["head"].b.params - by_name["head"].a.params == 2 * (6 - 4) * 4 * 4  # 16 more inputs per output
    report = text(d)
    assert "changed (3)" in report and "out 4 -> 6" in report and "- relu_1" in report
    same = diff(a.graph, a.costs, a.graph, a.costs)
    assert same.same and "the two specs build the same layers" in text(same)


def test_text_report_and_set_applies_to_both(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["diff", "seed_cnn", "seed_cnn_bn", "--set", "num_classes=3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "seed_cnn -> seed_cnn_bn"
    assert "added (3):" in out and "+ features.2.bn" in out and "+84" in out
    assert main(["diff", "seed_cnn", "no_such_spec"]) == 2
    assert "no spec file 'no_such_spec'" in capsys.readouterr().err
