"""The hostile corpus (tests/hostile/), generated bombs, poisoned weights and hostile output paths, all run
through the command line in one interpreter under an audit hook (hostile_runner.py): each ends in our
located errors (or a clean success), with no process spawned, no socket, no import outside the allow-list,
no file written outside its own output folder, no raw control character printed, and nothing left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import pickle
import re
import subprocess
import sys

import pytest
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CORPUS = TESTS / "hostile"
SEED = ROOT / "specs/seed_cnn.yaml"
LOCATED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<code>AS\d{3}): \S")
SUMMARY = re.compile(r"^\d+ errors?( \(stopped at the limit of \d+: fix these first\))?$")
PLAIN = re.compile(r"^(error|warning): AS\d{3}: \S")
USAGE = re.compile(r"^(usage: |\s+\S|archspec( \w+)?: error: )")  # argparse's own report of a bad option
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def expected(path: Path) -> tuple[set[str], bool]:
    """The codes the first line promises (`# expect: AS409`, `# expect: AS503 at build`, `# expect: ok`)."""
    words = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()[0].removeprefix("# expect:").split()
    return {w for w in words if w.startswith("AS")}, "build" in words


# -- cases too large (or too binary) to keep as files ---------------------------------------------------
def generated_specs(folder: Path) -> dict[str, tuple[str, set[str]]]:
    """name -> (spec text, codes it must raise; empty: it must compile)."""
    n = 9000
    widths = ", ".join(str(4 + k % 3) for k in range(n))
    big_list = (
        f"archspec: 1\nname: big_list\nparams:\n  widths: [{widths}]\ninput: [3, 8, 8]\nlayers:\n"
        f'  - {{op: dropout, repeat: {n}, p: "${{widths[i] / 100}}"}}\n  - {{op: flatten}}\n'
    )
    many_names = "archspec: 1\nname: many_names\ninput: [3, 8, 8]\nlayers:\n" + "".join(
        f"  - {{name: layer_number_{k}, op: relu, from: layer_numbr_{k}}}\n" for k in range(3000)
    )
    wide_add = (
        "archspec: 1\nname: wide_add\ninput: [3, 8, 8]\nlayers:\n  - {name: a, op: relu}\n"
        "  - {op: add, from: [" + ", ".join(["a"] * 30000) + "]}\n"
    )
    flood = (
        "archspec: 1\nname: flood\ninput: [3, 8, 8]\nlayers:\n"
        + "  - {op: conv2d, out: -1, kernel: 1, from: input}\n" * 15000
        + "  - {op: flatten, from: input}\n"
    )
    deep = "archspec: 1\nname: deep\ninput: [3, 8, 8]\nlayers: " + "[" * 200000 + "]" * 200000 + "\n"
    oversized = "# " + "x" * 1_000_100 + "\narchspec: 1\n"
    specs = {
        "gen_big_list_reads": (big_list, set()),
        "gen_did_you_mean_flood": (many_names, {"AS401"}),
        "gen_add_30000_inputs": (wide_add, {"AS402"}),
        "gen_error_flood": (flood, {"AS403"}),
        "gen_deep_nesting": (deep, {"AS108"}),
        "gen_oversized_file": (oversized, {"AS107"}),
    }
    for name, (text, _) in specs.items():
        (folder / f"{name}.yaml").write_text(text)
    return specs


class _Payload:
    """Unpickling this would run a shell command: weights_only=True must refuse it."""

    def __reduce__(self):  # noqa: D105
        return (os.system, ("touch /tmp/archspec-pickle-ran",))


def poisoned_weights(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (weights file, the code it must raise)."""
    good = {f"features.{k}.conv.weight": torch.zeros(1) for k in range(3)}
    cases: dict[str, object] = {
        "pickle_payload": {"features.0.conv.weight": _Payload()},
        "integer_keys": {0: torch.zeros(6, 3, 5, 5)},
        "meta_tensor": {"w": torch.empty(6, 3, 5, 5, device="meta")},
        "sparse_tensor": {"w": torch.zeros(6, 3).to_sparse()},
        "nested_tensor": {"w": torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])},
        "quantized_tensor": {"w": torch.quantize_per_tensor(torch.zeros(6, 3), 0.1, 0, torch.qint8)},
        "complex_tensor": {"w": torch.zeros(6, 3, dtype=torch.complex64)},
        "bool_tensor": {"w": torch.zeros(6, 3, dtype=torch.bool)},
        "integer_tensor": {"w": torch.zeros(6, 3, dtype=torch.int32)},
        "nan_tensor": {**good, "w": torch.tensor([float("nan")])},
        "not_a_mapping": [torch.zeros(1)],
    }
    codes = {"nan_tensor": "AS703"}
    out = {}
    for name, state in cases.items():
        path = folder / f"{name}.pt"
        if name == "pickle_payload":
            path.write_bytes(pickle.dumps(state))
        else:
            torch.save(state, path)
        out[name] = (path, codes.get(name, "AS701"))
    (folder / "a_folder.pt").mkdir()
    out["folder"] = (folder / "a_folder.pt", "AS701")
    return out


def run_cases(cases: list[dict[str, object]], tmp_path: Path) -> dict[str, dict[str, object]]:
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps(cases))
    result = subprocess.run(
        [sys.executable, str(TESTS / "hostile_runner.py"), str(manifest), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), result.stderr[-3000:]
    return {r["name"]: r for r in results}


def assert_clean(result: dict[str, object]) -> None:
    """No traceback, only located errors or plain error lines, nothing unsafe printed, no violation."""
    name, err, out = result["name"], str(result["stderr"]), str(result["stdout"])
    assert "Traceback" not in err, f"{name}: {err[-2000:]}"
    assert not result["violations"], f"{name}: {result['violations']}"
    for line in err.splitlines():
        assert LOCATED.match(line) or SUMMARY.match(line) or PLAIN.match(line) or USAGE.match(line), (
            f"{name}: unexpected line {line!r}"
        )
    assert not UNSAFE.search(err) and not UNSAFE.search(out.replace("\n", "")), (
        f"{name}: raw control characters printed"
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("hostile")
    generated = tmp / "generated"
    generated.mkdir()
    weights = tmp / "weights"
    weights.mkdir()
    cases: list[dict[str, object]] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for command in (["validate"], ["summary", "--json"], ["build"]):
            cases.append({"name": f"{path.stem}.{command[0]}", "argv": [command[0], str(path), *command[1:]]})
        if not expected(path)[0]:  # it builds: the generated-source backend must keep its strings literal too
            cases.append(
                {
                    "name": f"{path.stem}.source",
                    "argv": ["build", str(path), "--backend", "torch-source", "--save-weights"],
                }
            )
    for name in generated_specs(generated):
        cases.append({"name": f"{name}.summary", "argv": ["summary", str(generated / f"{name}.yaml")]})
    for name, (path, _) in poisoned_weights(weights).items():
        cases.append(
            {"name": f"weights_{name}", "argv": ["build", str(SEED), "--weights", str(path), "-o", "{out}/m.pt2"]}
        )
    cases += [
        {"name": "out_dev_null", "argv": ["build", str(SEED), "-o", os.devnull]},
        {"name": "out_folder", "argv": ["build", str(SEED), "-o", "{out}"]},
        {"name": "seed_past_64_bits", "argv": ["build", str(SEED), "--seed", str(2**64), "-o", "{out}/m.pt2"]},
        {"name": "spec_path_too_long", "argv": ["validate", "x" * 5000 + ".yaml"]},
        {"name": "spec_path_nul", "argv": ["validate", "a\0b.yaml"]},
        {"name": "unknown_limit", "argv": ["validate", str(SEED), "--limit", "cpu=9"]},
    ]
    return {**run_cases(cases, tmp), "__generated__": {"folder": str(generated)}}


CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_case(outcomes: dict[str, dict[str, object]], path: Path) -> None:
    codes, at_build = expected(path)
    for command in ("validate", "summary", "build"):
        result = outcomes[f"{path.stem}.{command}"]
        assert_clean(result)
        err = str(result["stderr"])
        must_fail = bool(codes) and (command == "build" or not at_build)
        if must_fail:
            assert result["code"] == 1, f"{path.stem} {command}: exit {result['code']}\n{err}"
            found = {m["code"] for m in map(LOCATED.match, err.splitlines()) if m}
            assert codes <= found, f"{path.stem} {command}: expected {codes}, got {found}\n{err}"
            for line in err.splitlines():  # every error points into a real file
                m = LOCATED.match(line)
                assert m is None or m["file"].endswith(".yaml") and int(m["line"]) >= 1 and int(m["column"]) >= 1
            assert result["files"] == [], f"{path.stem} {command} left {result['files']}"
        else:
            assert result["code"] == 0, f"{path.stem} {command}: exit {result['code']}\n{err}"
    if not codes:  # it builds, into the current folder, one file named after the spec and nothing else
        built = outcomes[f"{path.stem}.build"]
        assert len(built["files"]) == 1 and built["files"][0].endswith(".pt2"), built["files"]
        source = outcomes[f"{path.stem}.source"]
        assert_clean(source)
        assert source["code"] == 0 and sorted(Path(f).suffix for f in source["files"]) == [".py", ".safetensors"], (
            source
        )
    for marker in ("archspec-pwned", "archspec-injected", "archspec-escaped.pt2", "archspec-absolute.pt2"):
        assert not (Path("/tmp") / marker).exists()


def test_generated_bombs_end_quickly_in_located_errors(outcomes: dict[str, dict[str, object]], tmp_path: Path) -> None:
    specs = generated_specs(tmp_path)
    for name, (_, codes) in specs.items():
        result = outcomes[f"{name}.summary"]
        assert_clean(result)
        err = str(result["stderr"])
        if codes:
            found = {m["code"] for m in map(LOCATED.match, err.splitlines()) if m}
            assert result["code"] == 1 and codes <= found, f"{name}: {err[-1500:]}"
            assert len(err.splitlines()) <= 102, f"{name}: the error report is not capped"
        else:
            assert result["code"] == 0, f"{name}: {err[-1500:]}"
        # A hang detector, not a speed target: each of these took minutes or never ended before the fix.
        assert float(result["seconds"]) < 20, f"{name} took {result['seconds']:.1f} s"
    assert "100 errors (stopped at the limit of 100" in str(outcomes["gen_error_flood.summary"]["stderr"])


def test_poisoned_weights_are_refused_by_name(outcomes: dict[str, dict[str, object]]) -> None:
    names = [n for n in outcomes if n.startswith("weights_")]
    assert len(names) == 12
    for name in names:
        result = outcomes[name]
        assert_clean(result)
        assert result["code"] == 1 and result["files"] == [], f"{name}: {result['stderr']}"
    assert "AS703" in str(outcomes["weights_nan_tensor"]["stderr"]) and "'w'" in str(
        outcomes["weights_nan_tensor"]["stderr"]
    )
    assert "is a folder" in str(outcomes["weights_folder"]["stderr"])
    assert "key 0 is a int" in str(outcomes["weights_integer_keys"]["stderr"])
    for kind in ("meta", "sparse", "nested", "quantized"):
        assert kind in str(outcomes[f"weights_{kind}_tensor"]["stderr"]), outcomes[f"weights_{kind}_tensor"]["stderr"]
    assert not Path("/tmp/archspec-pickle-ran").exists()


def test_hostile_command_lines(outcomes: dict[str, dict[str, object]]) -> None:
    for name in (
        "out_dev_null",
        "out_folder",
        "seed_past_64_bits",
        "spec_path_too_long",
        "spec_path_nul",
        "unknown_limit",
    ):
        assert_clean(outcomes[name])
    assert outcomes["out_dev_null"]["code"] == 1 and "not a regular file" in str(outcomes["out_dev_null"]["stderr"])
    assert outcomes["out_folder"]["code"] == 1 and "is a folder" in str(outcomes["out_folder"]["stderr"])
    for name in ("seed_past_64_bits", "spec_path_too_long", "spec_path_nul", "unknown_limit"):
        assert outcomes[name]["code"] == 2, (name, outcomes[name]["stderr"])
