from pathlib import Path
import sys

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
    parser.addoption(
        "--deep",
        action="store_true",
        default=False,
        help="fuzz deeply: hundreds of thousands of mutated specs on every core (tests/test_fuzz.py)",
    )
    parser.addoption("--fuzz-seed", default="0", help="random seed of the mutation fuzzer (default 0)")
    parser.addoption(
        "--fuzz-cases",
        default=None,
        type=int,
        help="cases of each of the fuzzer's other modes: run folders, image files, torch-source "
        "(tests/test_fuzz.py; default a few, --deep a few hundred)",
    )
    parser.addoption(
        "--exhaustive",
        action="store_true",
        default=False,
        help="every backend on every spec of the zoo (ONNX and AOTInductor for all 43: about an hour "
        "on 2 cores); the default run covers one spec per structural kind",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--exhaustive"):
        return
    skip = pytest.mark.skip(reason="one spec per structural kind by default; --exhaustive runs every spec")
    for item in items:
        if "exhaustive" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test marked `fidelity(name, ...)` (tests/reference.py) must have compared the outputs of each
    spec it names, whole: the mark is what test_fidelity_zoo_rest.py counts as a spec's numeric check."""
    marker = item.get_closest_marker("fidelity")
    if marker is None:
        return (yield)
    from reference import COMPARED, WHOLE_MODEL

    COMPARED.clear()
    result = yield
    whole = {name for name, overrides in COMPARED if overrides <= WHOLE_MODEL}
    missing = [name for name in marker.args if name not in whole]
    assert not missing, f"marked fidelity({', '.join(marker.args)}) but compared no output of the whole {missing}"
    return result
