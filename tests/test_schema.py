"""Editor and shell support: `archspec schema` as a JSON Schema that every spec meets and broken specs fail,
and completion scripts for bash and zsh."""

import json
from pathlib import Path
import shutil

import pytest
import yaml

from archspec.cli import main
from archspec.registry import default_registry
from archspec.schema import json_schema

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs/families").glob("*.yaml"))
REGISTRY = default_registry()


@pytest.fixture(scope="module")
def validator():
    schema = json_schema(REGISTRY)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, data):
    return [e.message for e in validator.iter_errors(data)]


def test_every_spec_in_the_repository_meets_the_schema(validator):
    assert len(SPECS) > 40
    failing = {p.name: errors(validator, yaml.safe_load(p.read_text()))[:1] for p in SPECS}
    assert {name: e for name, e in failing.items() if e} == {}


SMALL = {
    "archspec": 1,
    "name": "n",
    "input": [3, 8, 8],
    "blocks": {
        "unit": {
            "params": {"width": 4, "act": {"type": "bool", "default": True}},
            "layers": [{"op": "conv2d", "out": "$width", "kernel": ["$k", 1]}],
        }
    },
    "layers": [
        {"op": "unit", "width": 8, "anything": "goes for a block"},
        {"op": "conv2d", "out": 4, "kernel": 3, "padding": "same", "from": "input", "repeat": 2},
        {"op": "relu", "if": "$act"},
    ],
}


@pytest.mark.parametrize(
    "where, change",
    [
        ("layers", {"op": "conv2d", "out": 4, "kernal": 3}),  # a misspelt argument (and kernel missing)
        ("layers", {"op": "conv2d", "out": 4, "kernel": 3, "stide": 2}),  # an unknown argument
        ("layers", {"op": "conv2d", "out": 4}),  # a required argument missing
        ("layers", {"op": "conv2d", "out": "four", "kernel": 3}),  # a string that is no expression
        ("layers", {"op": "conv2d", "out": 4, "kernel": [3, 3, 3]}),  # a pair of three
        ("layers", {"op": "relu", "inplace": True}),  # relu takes no arguments
        ("layers", {"name": "x"}),  # no op
        ("top", {"layerz": []}),  # an unknown top-level key
    ],
)
def test_broken_specs_fail_it(validator, where, change):
    assert errors(validator, SMALL) == []
    data = json.loads(json.dumps(SMALL))
    if where == "layers":
        data["layers"].append(change)
    else:
        data.update(change)
    assert errors(validator, data)


def test_editors_get_op_names_and_each_ops_arguments():
    schema = json_schema(REGISTRY)
    layer = schema["$defs"]["Layer"]
    assert {"enum": REGISTRY.op_names()} in layer["properties"]["op"]["anyOf"]
    conv = next(rule["then"] for rule in layer["allOf"] if rule["if"]["properties"]["op"]["const"] == "conv2d")
    assert {"out", "kernel", "stride", "padding", "groups", "bias", "from", "repeat", "if", "name"} <= set(
        conv["properties"]
    )
    assert conv["additionalProperties"] is False and set(conv["required"]) == {"out", "kernel"}
    assert conv["properties"]["out"]["description"] == "output channels"


def test_editors_get_the_window_attention_ops():
    layer = json_schema(REGISTRY)["$defs"]["Layer"]
    rules = {rule["if"]["properties"]["op"]["const"]: rule["then"] for rule in layer["allOf"]}
    expected = {
        "attention": {"scale", "dropout"},
        "matmul": set(),
        "roll": {"shifts", "axes"},
        "slice": {"axis", "start", "stop", "step"},
        "gather": {"axis", "index"},
        "parameter": {"shape", "init"},
        "constant": {"shape", "values"},
        "clamp": {"min", "max"},
        "scale": {"factor"},
        "normalize": {"axis", "eps"},
        "sub": set(),
        "abs": set(),
        "exp": set(),
    }
    for op, args in expected.items():
        assert args | {"from", "name"} <= set(rules[op]["properties"]), op
        assert rules[op]["additionalProperties"] is False
    assert set(rules["gather"]["required"]) == {"index"} and set(rules["constant"]["required"]) == {"shape", "values"}


def test_cli_schema_and_shell_completion(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(json_schema(REGISTRY)))
    pytest.importorskip("shtab")
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        assert all(command in script for command in ("graph", "card", "diff", "fingerprint", "summary", "--depth"))
    with pytest.raises(SystemExit):
        main(["completion", "fish"])


YLS = shutil.which("yaml-language-server")
EDITED = """\
# yaml-language-server: $schema={schema}
archspec: 1
name: demo
input: [3, 32, 32]
layers:
  - {{op: conv2d, out: 8, kernel: 3, stide: 2}}
  - {{op: relu, inplace: true}}
  - {{op: linear, out: 10}}
outputt: x
"""


@pytest.mark.skipif(YLS is None, reason="yaml-language-server (npm install yaml-language-server) is not on PATH")
def test_yaml_language_server_completes_ops_and_arguments_and_flags_unknown_keys(tmp_path, capsys):
    from lsp_client import Server

    assert main(["schema"]) == 0
    schema = tmp_path / "archspec.schema.json"
    schema.write_text(capsys.readouterr().out)
    spec = tmp_path / "demo.yaml"
    spec.write_text(EDITED.format(schema=schema))
    uri = spec.as_uri()
    server = Server(YLS)
    try:
        server.open(uri, spec.read_text())
        line = spec.read_text().splitlines()[5]
        assert set(REGISTRY.op_names()) <= set(server.completions(uri, 5, line.index("conv2d")))
        arguments = server.completions(uri, 5, line.index("stide"))
        assert {"stride", "padding", "groups", "bias", "dilation"} <= set(arguments) and "heads" not in arguments
        server.pump(3)
        flagged = {(d["range"]["start"]["line"], d["message"]) for d in server.diagnostics.get(uri, [])}
    finally:
        server.close()
    assert flagged >= {
        (5, "Property stide is not allowed."),
        (6, "Property inplace is not allowed."),
        (8, "Property outputt is not allowed."),
    }
