"""Generated forward code is deterministic and golden-tested: a refactor must not change it.

To accept an intended change, regenerate with `python tests/test_codegen.py` and review the diff.
"""

from pathlib import Path
import subprocess
import sys

import pytest

import archspec

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "tiny_residual": ROOT / "tests/specs/residual.yaml",
    "seed_cnn_bn": ROOT / "specs/seed_cnn_bn.yaml",
}


def generated(spec: Path) -> str:
    return archspec.build(spec).code.strip() + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_code_matches_golden(name):
    assert generated(CASES[name]) == (GOLDEN / f"{name}.golden.py.txt").read_text()


def test_generation_is_identical_in_a_fresh_process():
    code = "import archspec, sys; sys.stdout.write(archspec.build(sys.argv[1]).code)"
    runs = {subprocess.run([sys.executable, "-c", code, str(CASES["tiny_residual"])], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1


def test_parameter_names_follow_layer_names():
    names = [n for n, _ in archspec.build(CASES["tiny_residual"]).named_parameters()]
    assert names[:3] == ["stem.weight", "stem.bias", "stage.0.conv1.weight"]
    assert "stage.1.shortcut.weight" in names and "stage.0.shortcut.weight" not in names


if __name__ == "__main__":
    for name, spec in CASES.items():
        (GOLDEN / f"{name}.golden.py.txt").write_text(generated(spec))
