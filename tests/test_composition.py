"""Specs that compose: imports of block libraries, block and network outputs, collected repeats."""

from __future__ import annotations

from pathlib import Path
import textwrap

import pytest

import archspec
from archspec.cli import main
from archspec.errors import SpecErrors
from archspec.pipeline import compile_spec

LIBRARY = """\
archspec: 1
name: mine
imports: [archspec:conv]
blocks:
  pair:
    doc: A stride-1 and a stride-2 conv-norm-act.
    params: {width: {type: int}}
    outputs: [fine]
    layers:
      - {name: fine, op: conv_norm_act, out: $width}
      - {name: coarse, op: conv_norm_act, out: "${width * 2}", stride: 2}
"""

NET = """\
archspec: 1
name: net
imports: [lib.yaml, archspec:conv]
params: {copies: 2}
input: [3, 16, 16]
outputs: [head, p.fine]
layers:
  - {name: stem, op: conv_norm_act, out: 4, act: silu}
  - {name: m, op: conv_norm_act, out: 4, repeat: $copies}
  - {name: cat, op: concat, from: [stem, "m.*"], axis: 0}
  - {name: p, op: pair, width: 4}
  - {name: pool, op: adaptive_avgpool2d, size: 1, from: p}
  - {op: flatten}
  - {name: head, op: linear, out: 5}
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder / next(iter(files))


def errors_of(path: Path, **overrides: object) -> list:
    with pytest.raises(SpecErrors) as info:
        compile_spec(path, overrides or None)
    return info.value.errors


def test_imported_blocks_outputs_and_collected_repeats(tmp_path):
    spec = write(tmp_path, {"net.yaml": NET, "lib.yaml": LIBRARY})
    costs = compile_spec(spec).costs
    layers = {layer.name: layer for layer in costs.layers}
    assert layers["cat"].output == (12, 16, 16)  # stem + two copies of m, 4 channels each
    assert "p.coarse.0" in layers and layers["p.coarse.0"].output == (8, 8, 8)
    assert costs.outputs == ((5,), (4, 16, 16)) and costs.output == (5,)
    # repeat 0: "m.*" reads nothing, so the concat has the stem alone
    assert {l.name: l for l in compile_spec(spec, {"copies": 0}).costs.layers}["cat"].output == (4, 16, 16)


def test_several_outputs_in_torch_and_torch_source(tmp_path):
    torch = pytest.importorskip("torch")
    spec = write(tmp_path, {"net.yaml": NET, "lib.yaml": LIBRARY})
    module = archspec.build(spec, seed=3).eval()
    x = torch.randn(2, 3, 16, 16)
    head, fine = module(x)
    assert head.shape == (2, 5) and fine.shape == (2, 4, 16, 16)
    out = archspec.build_file(spec, tmp_path / "net_src.py", backend="torch-source", seed=3, save_weights=True)
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    from safetensors.torch import load_file

    standalone = namespace["Net"]()
    standalone.load_state_dict(load_file(out.with_suffix(".safetensors")))
    standalone.eval()
    head2, fine2 = standalone(x)
    assert torch.equal(head, head2) and torch.equal(fine, fine2)


def test_several_outputs_export_to_pt2_and_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    spec = write(tmp_path, {"net.yaml": NET, "lib.yaml": LIBRARY})
    module = archspec.build(spec, seed=1).eval()
    x = torch.randn(3, 3, 16, 16)
    expected = module(x)
    pt2 = archspec.build_file(spec, tmp_path / "net.pt2", seed=1)
    loaded = torch.export.load(str(pt2)).module()
    for got, want in zip(loaded(x), expected):
        assert torch.allclose(got, want, atol=1e-6)
    onnx = archspec.build_file(spec, tmp_path / "net.onnx", backend="onnx", seed=1)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert len(got) == 2
    for value, want in zip(got, expected):
        want = want.detach().numpy()
        assert abs(value - want).max() <= 1e-4 * max(1.0, float(abs(want).max()))


def test_summary_and_expect_state_every_output(tmp_path, capsys):
    spec = write(tmp_path, {"net.yaml": NET + "expect: {outputs: [[5], [4, 16, 16]]}\n", "lib.yaml": LIBRARY})
    assert main(["summary", str(spec)]) == 0
    assert "outputs [5] [4, 16, 16]" in capsys.readouterr().out
    wrong = write(tmp_path, {"wrong.yaml": NET + "expect: {outputs: [[5], [4, 8, 8]]}\n"})
    [error] = errors_of(wrong)
    assert error.code == "AS603" and "outputs" in error.message and error.location.line == 15


def test_imported_block_sees_only_its_own_params(tmp_path):
    library = LIBRARY.replace('out: "${width * 2}"', 'out: "${copies * 2}"')  # the importer's param
    spec = write(tmp_path, {"net.yaml": NET, "lib.yaml": library})
    [error] = errors_of(spec)
    assert error.code == "AS303" and "copies" in error.message
    assert error.location.file.endswith("lib.yaml") and error.location.line == 11


def test_library_errors_point_into_the_library(tmp_path):
    library = LIBRARY.replace("imports: [archspec:conv]\n", "")  # conv_norm_act is then unknown there
    spec = write(tmp_path, {"net.yaml": NET, "lib.yaml": library})
    errors = errors_of(spec)
    assert {e.code for e in errors} == {"AS204"}
    assert all(e.location.file.endswith("lib.yaml") for e in errors)


@pytest.mark.parametrize(
    "entry, files, message",
    [
        ("../outside.yaml", {}, "leaves the folder"),
        ("/etc/passwd", {}, "absolute"),
        ("missing.yaml", {}, "no such file"),
        ("archspec:nonesuch", {}, "not one of archspec's block libraries"),
        (
            "a.yaml",
            {
                "a.yaml": "archspec: 1\nname: a\nimports: [b.yaml]\nblocks: {x: {layers: [{op: relu}]}}\n",
                "b.yaml": "archspec: 1\nname: b\nimports: [a.yaml]\nblocks: {y: {layers: [{op: relu}]}}\n",
            },
            "imports lead back to",
        ),
    ],
)
def test_bad_imports_are_located(tmp_path, entry, files, message):
    (tmp_path / "outside.yaml").write_text(LIBRARY)
    spec = write(tmp_path / "specs", {"net.yaml": NET.replace("lib.yaml", entry), "lib.yaml": LIBRARY, **files})
    errors = errors_of(spec)
    assert errors[0].code == "AS111" and message in errors[0].message, errors
    if entry.startswith("a."):  # the cycle is reported at the import that closes it, in b.yaml
        assert errors[0].location.file.endswith("b.yaml")
    else:
        assert errors[0].location.file.endswith("net.yaml") and errors[0].location.line == 3


def test_one_name_from_two_files_names_both(tmp_path):
    other = LIBRARY.replace("name: mine", "name: other")
    spec = write(
        tmp_path,
        {
            "net.yaml": NET.replace("[lib.yaml, archspec:conv]", "[lib.yaml, other.yaml, archspec:conv]"),
            "lib.yaml": LIBRARY,
            "other.yaml": other,
        },
    )
    [error] = errors_of(spec)
    assert error.code == "AS112" and "lib.yaml" in error.message and "other.yaml" in error.message
    local = write(tmp_path, {"local.yaml": NET + "blocks: {pair: {layers: [{op: relu}]}}\n"})
    errors = errors_of(local)  # the layer using `pair` then also gives it an unknown width (AS403)
    assert [(e.code, e.location.line) for e in errors] == [("AS403", 11), ("AS112", 15)]
    assert "lib.yaml" in errors[1].message


def test_import_depth_is_bounded(tmp_path):
    chain = {
        f"l{k}.yaml": f"archspec: 1\nname: l{k}\nimports: [l{k + 1}.yaml]\nblocks: {{b{k}: {{layers: [{{op: relu}}]}}}}\n"
        for k in range(12)
    }
    chain["l12.yaml"] = "archspec: 1\nname: l12\nblocks: {b12: {layers: [{op: relu}]}}\n"
    spec = write(
        tmp_path, {"net.yaml": "archspec: 1\nname: net\nimports: [l0.yaml]\ninput: [3]\nlayers: [{op: b0}]\n", **chain}
    )
    errors = errors_of(spec)
    assert errors[0].code == "AS111" and "import_depth" in errors[0].message


def test_reading_a_block_output_that_is_not_declared(tmp_path):
    spec = write(tmp_path, {"net.yaml": NET.replace("from: p}", "from: p.coarse}"), "lib.yaml": LIBRARY})
    [error] = errors_of(spec)
    assert error.code == "AS401" and "no output 'coarse'" in error.message and "outputs:" in error.message


def test_collecting_nothing_is_an_error(tmp_path):
    spec = write(tmp_path, {"net.yaml": NET.replace('from: [stem, "m.*"]', 'from: ["m.*"]'), "lib.yaml": LIBRARY})
    [error] = errors_of(spec, copies=0)
    assert error.code == "AS402" and "gives no input" in error.message


def test_thin_spec_is_named_after_its_variant(tmp_path):
    family = (
        "archspec: 1\nname: fam\nparams: {w: 4}\nvariants: {small: {w: 2}}\ninput: [3]\n"
        "layers: [{op: linear, out: $w}]\n"
    )
    spec = write(tmp_path, {"small.yaml": "archspec: 1\nuse: fam.yaml\nvariant: small\n", "fam.yaml": family})
    compiled = compile_spec(spec)
    assert compiled.graph.name == "small" and compiled.costs.output == (2,)


def test_list_and_explain_show_library_blocks(capsys):
    code = main(["list"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "conv_norm_act" in out and "archspec:conv" in out
    assert main(["explain", "conv_norm_act"]) == 0
    card = capsys.readouterr().out
    assert "imports: [archspec:conv]" in card and "act: str, default 'relu'" in card


def test_every_library_block_loads_and_explains_itself(capsys):
    from archspec.registry import default_registry
    from archspec.validate import standard_blocks

    blocks, broken = standard_blocks(default_registry())
    assert not broken and {"conv_norm_act", "squeeze_excitation"} <= set(blocks)
    for name, ref in blocks.items():
        assert ref.source and ref.source.startswith("archspec:"), name
        assert ref.block.doc.strip(), f"library block {name} ({ref.source}) has no doc:"
        assert main(["explain", name]) == 0
        assert capsys.readouterr().out.startswith(f"{name} (block, from {ref.source}")


def test_errors_inside_a_library_also_name_the_spec_layer_that_uses_it(tmp_path):
    spec = write(tmp_path, {"net.yaml": NET.replace("width: 4", "width: 0"), "lib.yaml": LIBRARY})
    errors = errors_of(spec)
    assert errors and all(e.location.file.endswith("conv.yaml") for e in errors)  # the conv of conv_norm_act
    assert all("in 'p', which uses the imported block at" in e.message and "net.yaml:11:" in e.message for e in errors)


STRIDED = """\
archspec: 1
name: strided
input: [3, 32, 32]
dynamic: {resolution: [16, 64], multiple: 8}
layers:
  - {name: a, op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1}
  - {name: b, op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1}
  - {name: c, op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1}
  - {name: up, op: interpolate, from: [c, input], mode: nearest}
"""


def test_dynamic_sides_may_be_multiples(tmp_path):
    torch = pytest.importorskip("torch")
    spec = write(tmp_path, {"strided.yaml": STRIDED})
    program = torch.export.load(str(archspec.build_file(spec, tmp_path / "s.pt2"))).module()
    for h, w in [(16, 64), (24, 40), (64, 64)]:
        assert program(torch.randn(2, 3, h, w)).shape == (2, 4, h, w)
    bad = write(tmp_path, {"bad.yaml": STRIDED.replace("[16, 64], multiple: 8", "[20, 64], multiple: 8")})
    [error] = errors_of(bad)
    assert error.code == "AS203" and "multiple" in error.message and error.location.line == 4


def test_the_readme_tour_s_import_example_builds_as_it_says(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    text = readme.split("name: tiny_effnet", 1)[1].split("```", 1)[0]
    spec = write(tmp_path, {"tiny_effnet.yaml": "archspec: 1\nname: tiny_effnet" + text})
    costs = compile_spec(spec).costs
    assert "imports: [archspec:conv]" in text and "9,250 parameters, 6.87M MACs" in readme
    assert (costs.params, round(costs.macs / 1e6, 2)) == (9250, 6.87)


def test_a_preset_is_the_block_under_another_name_with_values_set(tmp_path, capsys):
    library = LIBRARY.replace("    outputs: [fine]\n", "    outputs: [fine]\n    presets: {quad: {width: 8}}\n")
    net = NET.replace("op: pair, width: 4}", "op: quad}")
    costs = compile_spec(write(tmp_path, {"net.yaml": net, "lib.yaml": library})).costs
    assert {l.name: l.output for l in costs.layers}["p.fine.0"] == (8, 16, 16)  # no extra level in the names
    bad = library.replace("{quad: {width: 8}}", "{quad: {widht: 8}, pair: {}}")
    errors = errors_of(write(tmp_path, {"net.yaml": net, "lib.yaml": bad}))
    assert {e.code for e in errors} == {"AS206", "AS112"} and "Did you mean 'width'" in str(errors)
    assert main(["explain", "c3k2"]) == 0
    assert "a preset of c2f that sets c3k: false" in capsys.readouterr().out


def test_validating_a_library_as_a_spec_says_how_to_use_it(tmp_path):
    [error] = errors_of(write(tmp_path, {"lib.yaml": LIBRARY}))
    assert error.code == "AS203" and "block library" in error.message and "imports: [lib.yaml]" in error.message


def test_an_import_that_is_not_a_regular_file_is_refused_unread(tmp_path):
    import os

    (tmp_path / "folder.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")  # never opened: a read would block
    for entry in ("folder.yaml", "fifo.yaml"):
        [error] = errors_of(write(tmp_path, {"net.yaml": NET.replace("lib.yaml", entry)}))
        assert error.code == "AS111" and "not a regular file" in error.message and error.location.line == 3
