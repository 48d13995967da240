import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))  # shared helpers (reference.py) import as plain modules


@pytest.fixture
def write_spec(tmp_path):
    """Write spec text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


def pytest_addoption(parser):
    parser.addoption("--deep", action="store_true", default=False,
                     help="fuzz deeply: hundreds of thousands of mutated specs on every core (tests/test_fuzz.py)")
    parser.addoption("--fuzz-seed", default="0", help="random seed of the mutation fuzzer (default 0)")
