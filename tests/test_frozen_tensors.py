"""Frozen tensors and values: a layer's `trainable: false` and its own `init:` (docs/spec-format.md,
"Frozen tensors and fixed values").

The use case is YOLO's DFL: a 1x1 conv 16 -> 1 without bias whose weight is arange(16), never trained. Checked:
requires_grad after a build in the torch and torch-source backends (which stay bit-identical), that training
leaves frozen tensors as they are, that values land exactly, located errors, block-path keys, the counts in
`summary`, that the `parameter` op's own `init` argument means what it meant, `--weights`, and export.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
import types

import pytest
import torch

import archspec
from archspec import cli
from archspec.backends import BuildOptions
from archspec.errors import SpecErrors
from archspec.registry import default_registry

ARANGE = '"${[[[[float(k)]] for k in range(16)]]}"'  # shape [1, 16, 1, 1]: out, in, kh, kw

# A conv-bn-act block (the spec's init: rules zero every batch-norm bias), one copy of it frozen whole, one with a
# value set by a path inside it, and the DFL conv.
SPEC = f"""\
archspec: 1
name: frozen
input: [3, 8, 8]
init:
  - {{op: batchnorm, bias: zeros}}
  - {{op: conv2d, weight: {{kaiming_normal: {{mode: fan_out, nonlinearity: relu}}}}}}
blocks:
  cba:
    params: {{c: {{type: int}}}}
    layers:
      - {{name: conv, op: conv2d, out: $c, kernel: 3, padding: 1, bias: false}}
      - {{name: bn, op: batchnorm, init: {{weight: {{constant: {{value: 2.0}}}}}}}}
      - {{op: relu}}
layers:
  - {{name: stem, op: cba, c: 16, init: {{bn.bias: {{constant: {{value: 0.5}}}}, bn.weight: ones}}}}
  - {{name: frozen, op: cba, c: 16, trainable: false}}
  - {{name: dfl, op: conv2d, out: 1, kernel: 1, bias: false, trainable: false,
     init: {{weight: {{values: {ARANGE}}}}}}}
  - {{op: flatten}}
  - {{name: head, op: linear, out: 10}}
"""
FROZEN = {"frozen.conv.weight", "frozen.bn.weight", "frozen.bn.bias", "dfl.weight"}


def load_source(code: str) -> torch.nn.Module:
    module = types.ModuleType("generated")
    exec(compile(code, "<generated>", "exec"), module.__dict__)
    return getattr(module, ast.parse(code).body[-1].name)()  # type: ignore[no-any-return]


def errors_of(path: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(path)
    return [str(e) for e in info.value.errors]


# -- trainable: false ----------------------------------------------------------------------------------
def test_frozen_tensors_take_no_gradient_in_both_backends(write_spec) -> None:
    path = write_spec(SPEC)
    model = archspec.build(path)
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    assert {name for name, g in grads.items() if not g} == FROZEN  # names unchanged; every tensor of the block
    assert "dfl.weight" in model.state_dict() and "frozen.bn.running_mean" in model.state_dict()
    source = load_source(archspec.build(path, backend="torch-source").text)
    assert {name: p.requires_grad for name, p in source.named_parameters()} == grads
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all((p.grad is None) == (name in FROZEN) for name, p in model.named_parameters())


def test_torch_source_is_bit_identical_and_carries_the_values(write_spec) -> None:
    path = write_spec(SPEC)
    compiled = archspec.compile_spec(path)
    registry = default_registry()
    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
    code = registry.backend("torch-source").build(compiled.graph, BuildOptions()).text
    ours = load_source(code).eval()
    # The file itself starts the DFL at arange(16), without any weights file: the values are part of the network.
    assert torch.equal(ours.dfl.weight, torch.arange(16.0).reshape(1, 16, 1, 1))
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert all(not p.requires_grad for name, p in ours.named_parameters() if name in FROZEN)  # loading keeps it
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_a_training_step_leaves_frozen_tensors_alone(write_spec) -> None:
    from archspec.train import TrainOptions, loop

    path = write_spec(SPEC)
    model = archspec.build(path)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    options = TrainOptions(spec=str(path), data="digits", optimizer="sgd", lr=0.1, weight_decay=0.1)
    optimizer = loop.make_optimizer(options, model)
    handed = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert handed == {id(p) for p in model.parameters() if p.requires_grad}  # frozen tensors are not handed over
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
        optimizer.step()
    after = model.state_dict()
    for name in FROZEN:
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert not torch.equal(after["stem.conv.weight"], before["stem.conv.weight"])


def test_archspec_train_keeps_frozen_tensors(write_spec, tmp_path: Path, capsys) -> None:
    path = write_spec(SPEC.replace("input: [3, 8, 8]", "input: [3, 16, 16]"))
    run = tmp_path / "run"
    code = cli.main(
        [
            "train",
            str(path),
            "--data",
            "digits",
            "--epochs",
            "1",
            "--batch-size",
            "128",
            "--out",
            str(run),
            "--threads",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    from safetensors.torch import load_file

    trained, start = load_file(str(run / "model.safetensors")), archspec.build(path).state_dict()  # seed 0, as train
    for name in FROZEN:
        assert torch.equal(trained[name], start[name]), name
    assert not torch.equal(trained["head.weight"], start["head.weight"])


def test_trainable_may_be_an_expression_and_freezes_a_parameter_layer(write_spec) -> None:
    path = write_spec("""\
archspec: 1
name: scaled
params: {freeze: true}
input: [4]
layers:
  - {name: table, op: parameter, shape: [4], init: {constant: {value: 1.5}}, from: input, trainable: "${not freeze}"}
  - {name: sum, op: add, from: [input, table]}
""")
    model = archspec.build(path)
    assert not model.table.requires_grad and torch.equal(model.table.detach(), torch.full((4,), 1.5))
    assert archspec.build(path, freeze=False).table.requires_grad
    source = load_source(archspec.build(path, backend="torch-source").text)
    assert not source.table.requires_grad


# -- init: values and rules on a layer -----------------------------------------------------------------
def test_values_land_exactly_and_layer_init_wins_over_rules(write_spec) -> None:
    model = archspec.build(write_spec(SPEC))
    assert torch.equal(model.dfl.weight.detach(), torch.arange(16.0).reshape(1, 16, 1, 1))
    assert torch.equal(model.stem.bn.bias.detach(), torch.full((16,), 0.5))  # the layer's init: over the rule's zeros
    # Inside out: the using layer's bn.weight: ones wins over the block layer's own constant 2.0 ...
    assert torch.equal(model.stem.bn.weight.detach(), torch.ones(16))
    # ... which still holds where no using layer says otherwise, over the spec's rules.
    assert torch.equal(model.frozen.bn.weight.detach(), torch.full((16,), 2.0))
    assert torch.equal(model.frozen.bn.bias.detach(), torch.zeros(16))


def test_block_path_keys_reach_layers_inside_nested_blocks_and_repeats(write_spec) -> None:
    path = write_spec("""\
archspec: 1
name: nested
input: [2, 4, 4]
blocks:
  unit:
    layers:
      - {name: conv, op: conv2d, out: 2, kernel: 1}
      - {name: scale, op: parameter, shape: [2, 1, 1], from: input}
      - {op: mul, from: [conv, scale]}
  pair:
    layers:
      - {name: a, op: unit}
      - {name: b, op: unit}
layers:
  - {name: p, op: pair, repeat: 2,
     init: {b.conv.weight: {values: [1, 2, 3, 4]}, b.conv.bias: {values: "${[i, -i]}"}, a.scale: {values: [7, 8]}}}
""")
    model = archspec.build(path)
    for k in range(2):
        copy = model.p.get_submodule(str(k))
        assert torch.equal(copy.b.conv.weight.detach().flatten(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
        assert torch.equal(copy.b.conv.bias.detach(), torch.tensor([float(k), float(-k)]))  # i: the repeat index
        assert torch.equal(copy.a.scale.detach().flatten(), torch.tensor([7.0, 8.0]))
    source = load_source(archspec.build(path, backend="torch-source").text)
    assert torch.equal(source.p["1"].a.scale.detach().flatten(), torch.tensor([7.0, 8.0]))
    assert torch.equal(source.p["1"].b.conv.bias.detach(), torch.tensor([1.0, -1.0]))
    text = cli_out(["summary", str(path), "--verbose"])
    assert "weight=values(4) bias=values(2)" in text


def cli_out(args: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(args) == 0
    return buffer.getvalue()


# -- located errors ------------------------------------------------------------------------------------
BAD = """\
archspec: 1
name: bad
input: [16, 4, 4]
blocks:
  cba:
    layers:
      - {name: conv, op: conv2d, out: 16, kernel: 1, bias: false}
      - {name: bn, op: batchnorm}
layers:
  - {name: dfl, op: conv2d, out: 1, kernel: 1, bias: false, init: {weight: {values: "${[float(k) for k in range(15)]}"}}}
  - {op: flatten}
"""


def test_a_wrong_element_count_is_a_located_error(write_spec) -> None:
    path = write_spec(BAD)
    [error] = errors_of(path)
    line = BAD.splitlines().index(next(l for l in BAD.splitlines() if "name: dfl" in l)) + 1
    column = BAD.splitlines()[line - 1].index('"${') + 1
    assert error.startswith(f"{path}:{line}:{column}: AS435: ")
    assert "15 numbers" in error and "dfl.weight has shape [1, 16, 1, 1] (16 elements)" in error


@pytest.mark.parametrize(
    "layer, code, words",
    [
        ("{name: x, op: cba, init: {conv.wieght: zeros}}", "AS436", "Did you mean 'conv.weight'"),
        ("{name: x, op: conv2d, out: 2, kernel: 1, init: {weight: {values: [1, true]}}}", "AS435", "give numbers"),
        (
            "{name: x, op: conv2d, out: 2, kernel: 1, init: {weight: {nromal: {std: 1}}}}",
            "AS438",
            "Did you mean 'normal'",
        ),
        ("{name: x, op: conv2d, out: 2, kernel: 1, init: {bias: {normal: {std: -1}}}}", "AS438", "std: must be >= 0"),
        ("{name: x, op: conv2d, out: 2, kernel: 1, init: zeros}", "AS438", "maps its tensors to rules"),
        ("{name: x, op: relu, init: {weight: zeros}}", "AS436", "Its tensors: none"),
        ("{name: x, op: conv2d, out: 2, kernel: 1, trainable: '${1}'}", "AS203", "trainable: gives 1"),
        ("{name: x, op: conv2d, out: 2, kernel: 1, trainable: '${nope}'}", "AS303", "unknown name 'nope'"),
    ],
)
def test_bad_layer_settings_are_located_errors(write_spec, layer: str, code: str, words: str) -> None:
    text = BAD.replace(BAD.splitlines()[9], f"  - {layer}")
    path = write_spec(text)
    [error] = errors_of(path)
    assert f"{path}:10:" in error and f": {code}: " in error and words in error, error


def test_trainable_is_a_reserved_key_for_ops_and_block_parameters(write_spec) -> None:
    from archspec.ops.base import RESERVED_LAYER_KEYS, NoParams, OpDef
    from archspec.spec import LAYER_KEYS

    assert "trainable" in RESERVED_LAYER_KEYS and {"trainable", "init"} <= set(LAYER_KEYS)
    assert "init" not in RESERVED_LAYER_KEYS  # parameter and layer_scale keep their own init argument

    class Clash(NoParams):
        trainable: bool = True

    with pytest.raises(ValueError, match="reserved layer keys"):
        OpDef("clash", Clash, (1, 1), lambda p, s: s[0])
    path = write_spec(
        BAD.replace(
            "    layers:\n      - {name: conv", "    params: {trainable: true}\n    layers:\n      - {name: conv", 1
        )
    )
    assert any("AS203" in e and "'trainable' cannot be a parameter name" in e for e in errors_of(path))


# -- the parameter and layer_scale ops keep their own init argument ---------------------------------------
def test_parameter_and_layer_scale_init_arguments_mean_what_they_meant(write_spec) -> None:
    path = write_spec("""\
archspec: 1
name: v1
input: [4, 2, 2]
layers:
  - {name: table, op: parameter, shape: [4, 2, 2], init: {constant: {value: 2.5}}, from: input}
  - {name: bias, op: parameter, shape: [4, 2, 2], init: zeros, from: input}
  - {name: sum, op: add, from: [input, table, bias]}
  - {name: layer_scale, op: layer_scale, init: 0.25}
""")
    compiled = archspec.compile_spec(path)
    table = compiled.graph.node("table")
    assert table.params.init == {"constant": {"value": 2.5}} and table.init == () and table.trainable  # type: ignore[union-attr]
    assert compiled.graph.node("layer_scale").params.init == 0.25  # type: ignore[union-attr]
    model = archspec.build(path)
    assert torch.equal(model.table.detach(), torch.full((4, 2, 2), 2.5)) and model.table.requires_grad
    assert torch.equal(model.layer_scale.detach().flatten(), torch.full((4,), 0.25))
    # Its misspelt argument is still the op's argument error, at the same place.
    broken = write_spec(path.read_text().replace("init: zeros", "init: {nromal: {}}"), "broken.yaml")
    [error] = errors_of(broken)
    assert f"{broken}:6:" in error and "AS403" in error and "parameter argument 'init'" in error


def test_zoo_specs_that_use_the_parameter_init_argument_are_unchanged() -> None:
    """Swin V2 writes `{op: parameter, init: {constant: {value: log(10)}}}`: same graph as before the layer key
    (no layer-level init on any node, nothing frozen)."""
    root = Path(__file__).resolve().parents[1]
    compiled = archspec.compile_spec(root / "specs/swin_v2_t.yaml")
    scales = [n for n in compiled.graph.ops if n.name.endswith("logit_scale")]
    assert scales and all(
        n.params.init == {"constant": {"value": pytest.approx(2.302585092994046)}}  # type: ignore[union-attr]
        for n in scales
    )
    assert all(n.trainable and all(i.kind != "values" for _, i in n.init) for n in compiled.graph.ops)


# -- summary ---------------------------------------------------------------------------------------------
def test_summary_reports_trainable_params(write_spec) -> None:
    path = write_spec(SPEC)
    costs = archspec.summary(path)
    frozen = 16 * 16 * 9 + 2 * 16 + 16  # frozen.conv (3x3, 16 -> 16), frozen.bn weight and bias, dfl
    assert costs.params - costs.trainable_params == frozen
    data = json.loads(cli_out(["summary", str(path), "--json"]))
    assert data["params"] == costs.params and data["trainable_params"] == costs.trainable_params
    text = cli_out(["summary", str(path)])
    assert f"params {costs.params:,}" in text and f"trainable {costs.trainable_params:,}" in text


# -- weights and export -----------------------------------------------------------------------------------
def test_weights_load_into_frozen_tensors(write_spec, tmp_path: Path) -> None:
    path = write_spec(SPEC)
    state = archspec.build(path, seed=1).state_dict()
    state["dfl.weight"] = -torch.arange(16.0).reshape(1, 16, 1, 1)  # the checkpoint's values win over init: values
    checkpoint = tmp_path / "ref.pt"
    torch.save(state, checkpoint)
    model = archspec.build(path, weights=checkpoint)
    assert torch.equal(model.dfl.weight.detach(), state["dfl.weight"]) and not model.dfl.weight.requires_grad
    assert torch.equal(model.frozen.conv.weight.detach(), state["frozen.conv.weight"])
    assert not model.frozen.conv.weight.requires_grad


def test_pt2_and_onnx_export_a_frozen_layer(write_spec, tmp_path: Path, monkeypatch) -> None:
    path = write_spec(SPEC)
    monkeypatch.chdir(tmp_path)
    model = archspec.build(path).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    program = torch.export.load(str(archspec.build_file(path, tmp_path / "frozen.pt2"))).module()
    torch.testing.assert_close(program(x), expected, rtol=0, atol=0)
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    out = archspec.build_file(path, tmp_path / "frozen.onnx", backend="onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    torch.testing.assert_close(
        torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), expected, rtol=1e-4, atol=1e-4
    )


def test_the_schema_accepts_both_keys(write_spec) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from archspec.schema import json_schema

    jsonschema.validate(yaml.safe_load(SPEC), json_schema(default_registry()))
