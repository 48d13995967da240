"""The command line as a user drives it: exit codes, outputs, artifacts."""

import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from archspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "specs/seed_cnn.yaml")
SEED_BN = str(ROOT / "specs/seed_cnn_bn.yaml")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok_and_exit_codes(capsys, tmp_path):
    code, out, _ = run(capsys, "validate", SEED)
    assert code == 0 and "66,706 params" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: x\ninput: [3, 8, 8]\nlayers:\n  - {op: relu, bias: yes}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert (
        code == 1
        and err.splitlines()[0]
        == f"{bad}:5:22: AS106: 'yes' is not a boolean in a spec; write true or false (or quote it)"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
    code, _, err = run(capsys, "validate", SEED, "--set", "no_equals_sign")
    assert code == 2 and "AS206" in err  # a usage error: the command line, not the spec, is wrong


def test_summary_json_contract(capsys):
    code, out, _ = run(capsys, "summary", SEED_BN, "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == {
        "name",
        "input",
        "input_dtype",
        "output",
        "outputs",
        "params",
        "trainable_params",
        "macs",
        "layers",
    }
    assert data["input_dtype"] == "float32"  # int64 for token ids
    assert data["outputs"] == [data["output"]]  # one output: the list holds it alone
    assert (
        data["params"] == 66790 and data["macs"] == 1439400 and data["output"] == [10] and data["input"] == [3, 32, 32]
    )
    assert data["trainable_params"] == data["params"]  # no layer says trainable: false
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]
    assert set(data["layers"][0]) == {"name", "op", "output", "params", "macs"}


def test_summary_table_and_overrides(capsys):
    code, out, _ = run(
        capsys, "summary", SEED, "--set", "num_classes=5", "--set", "resolution=64", "--set", "widths=[4, 8, 16]"
    )
    assert code == 0 and "input [3, 64, 64] -> output [5]" in out and "features.2.conv" in out


def test_build_writes_an_exported_program_with_dynamic_batch(capsys, tmp_path):
    out = tmp_path / "model.pt2"
    code, stdout, err = run(capsys, "build", SEED_BN, "-o", str(out), "--set", "num_classes=7")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt2"]
    # Loadable without archspec: block its import in a fresh interpreter.
    script = (
        "import sys; sys.modules['archspec'] = None\n"
        "import torch\n"
        "m = torch.export.load(sys.argv[1]).module()\n"
        "for n in (1, 3, 8): assert tuple(m(torch.randn(n, 3, 32, 32)).shape) == (n, 7)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.export.load(path).state_dict)


def test_build_is_deterministic_per_seed(capsys, tmp_path):
    paths = [tmp_path / name / "model.pt2" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("0", "0", "1")):
        assert run(capsys, "build", SEED, "-o", str(path), "--seed", seed)[0] == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()  # same spec, same seed: same file
    a, c = _weights(paths[0]), _weights(paths[2])
    assert a.keys() == c.keys() and len(a) == 12
    assert not any(torch.equal(a[k], c[k]) for k in a if "weight" in k)


def test_failed_build_leaves_nothing_behind(capsys, tmp_path):
    out = tmp_path / "model.pt2"
    code, _, err = run(capsys, "build", SEED, "-o", str(out), "--set", "widths=[2, 2, 2, 2, 2, 2]")
    assert code == 1 and "AS501" in err
    (tmp_path / "dir.pt2").mkdir()
    code, _, err = run(capsys, "build", SEED, "-o", str(tmp_path / "dir.pt2"))
    assert code == 1 and "AS804" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.pt2"]


def test_weights_from_pt_file_and_mismatch(capsys, tmp_path):
    import archspec

    reference = archspec.build(SEED, seed=3)
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    loaded = archspec.build(SEED, weights=tmp_path / "ref.pt")
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), loaded.state_dict().values()))
    code, _, err = run(capsys, "build", SEED_BN, "--weights", str(tmp_path / "ref.pt"), "-o", str(tmp_path / "x.pt2"))
    assert code == 1 and "AS704" in err and "seed_cnn.yaml:" in err and not (tmp_path / "x.pt2").exists()
    (tmp_path / "evil.pt").write_bytes(b"not a pickle")
    code, _, err = run(capsys, "build", SEED, "--weights", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "y.pt2"))
    assert code == 1 and "AS701" in err


def test_list_schema_explain(capsys):
    code, out, _ = run(capsys, "list", "--specs", str(ROOT / "specs"))
    assert code == 0 and "seed_cnn" in out and "conv2d" in out and "archspec 0.1.0" in out and "torch" in out
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and "Layer" in schema["$defs"] and schema["$defs"]["Layer"]["additionalProperties"] is True
    code, out, _ = run(capsys, "explain", "as501")
    assert code == 0 and out.startswith("AS501: ")
    code, out, _ = run(capsys, "explain", "conv2d")
    assert (
        code == 0
        and "kernel: int | [int, int], required" in out
        and "padding: int | [int, int] | 'same' | 'valid', default 0" in out
    )
    code, _, err = run(capsys, "explain", "conv3d")
    assert code == 2 and "Did you mean 'conv2d'" in err  # (library blocks such as conv may follow)


def test_validate_and_summary_do_not_import_torch():
    for command in ("validate", "summary"):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "archspec.cli", command, SEED],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        imported = {
            line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
        }
        heavy = [m for m in imported if m.split(".")[0] in ("torch", "torchvision", "timm", "safetensors", "onnx")]
        assert "archspec.lower" in imported and not heavy, f"`archspec {command}` imported {heavy[:5]}"


def test_variant_option_picks_a_row_of_the_family_table(capsys):
    family = str(ROOT / "specs/families/seed_cnn.yaml")
    code, out, _ = run(capsys, "summary", family, "--variant", "seed_cnn_bn", "--json")
    assert code == 0 and json.loads(out)["params"] == 66790
    code, _, err = run(capsys, "validate", family, "--variant", "seed_cnn_nb")
    assert code == 2 and "AS205" in err and "Did you mean 'seed_cnn_bn'" in err


def test_optimize_summary_counts_what_build_optimize_writes(capsys, tmp_path):
    code, out, _ = run(capsys, "summary", SEED_BN, "--json", "--optimize")
    data = json.loads(out)
    assert (
        code == 0 and data["params"] == 66790 - 2 * (6 + 12 + 24) == 66706
    )  # the convs (biased already) absorb the norms
    assert "batchnorm" not in {layer["op"] for layer in data["layers"]}
    target = tmp_path / "fast.pt2"
    code, _, err = run(capsys, "build", SEED_BN, "--optimize", "-o", str(target))
    assert code == 0, err
    program = torch.export.load(target).module()
    assert sum(p.numel() for p in program.parameters()) == data["params"]
    import archspec

    reference = archspec.build(SEED_BN).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program(x), reference(x), rtol=1e-5, atol=1e-5)


def test_every_subcommand_has_one_handler():
    """cli.COMMANDS is the dispatch table: every subcommand the parser knows has a handler, and no other name."""
    import argparse

    from archspec.cli import COMMANDS, _parser

    (sub,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) == set(sub.choices) and all(callable(h) for h in COMMANDS.values())
