"""The figures the README and docs/ state, computed from the specs and the tests: a figure that goes stale
(a spec added, a range changed, a new largest network) fails here until the text says the new one.

Each test finds its sentence by the words around the figure, so rewording a sentence means updating its
pattern here, not dropping the check. Figures that cannot be computed cheaply (the suite's size and time)
are stated in the README as approximate and dated, and are not checked."""

from __future__ import annotations

import ast
import json
from pathlib import Path
import re

import pytest

import archspec
from archspec.errors import SpecErrors
from archspec.limits import Limits
from archspec.registry import default_registry
from archspec.spec import Dynamic

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
LIMITS = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
VIEWS = (ROOT / "docs" / "views.md").read_text(encoding="utf-8")
REFERENCE = json.loads((Path(__file__).parent / "reference_models.json").read_text(encoding="utf-8"))


def stated(text: str, pattern: str) -> tuple[str, ...]:
    """The figures a sentence states: the groups of `pattern`, whose whitespace matches any line break."""
    found = re.search(pattern.replace(" ", r"\s+"), text)
    assert found, f"no sentence matches {pattern!r}: reworded? update the pattern in tests/test_docs_figures.py"
    return found.groups()


def number(text: str) -> int:
    return int(text.replace(",", ""))


HUNGRIEST, WORK = stated(LIMITS, r"scope copies \(the zoo spec that needs the most, (\w+), needs ([\d,]+)\)")


def work_limit(steps: int) -> Limits:
    """A work budget of exactly `steps`, whatever the spec's size (work_for is the smaller of the two)."""
    return Limits(work=steps, work_base=steps)


@pytest.fixture(scope="module")
def zoo() -> dict[str, archspec.Compiled | SpecErrors]:
    """Every spec, compiled within the work budget limits.md says the hungriest spec needs (one pass serves
    every test here): a spec that needs more is kept as its errors, for the work test to report."""
    registry, limits = default_registry(), work_limit(number(WORK))
    compiled: dict[str, archspec.Compiled | SpecErrors] = {}
    for path in sorted(SPECS.glob("*.yaml")):
        try:
            compiled[path.stem] = archspec.compile_spec(path, registry=registry, limits=limits)
        except SpecErrors as exc:
            compiled[path.stem] = exc
    return compiled


def built(zoo: dict[str, archspec.Compiled | SpecErrors]) -> dict[str, archspec.Compiled]:
    """The specs that compiled (the work test reports any that did not)."""
    return {name: result for name, result in zoo.items() if not isinstance(result, SpecErrors)}


def test_readme_counts_the_specs_and_the_reference_list():
    specs = {path.stem for path in SPECS.glob("*.yaml")}
    assert set(REFERENCE) <= specs, f"references without a spec: {sorted(set(REFERENCE) - specs)}"
    references, total = stated(
        README,
        r"all (\d+) architectures of the reference list \(`tests/reference_models.json`\), "
        r"among the (\d+) specs of `specs/`",
    )
    assert (number(references), number(total)) == (len(REFERENCE), len(specs))


class _Claims:
    """The specs that the `fidelity` marks of the default run name (as test_fidelity_zoo_rest.py counts them)."""

    def __init__(self) -> None:
        self.specs: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("fidelity")
            if marker is not None and "exhaustive" not in item.keywords and item.get_closest_marker("skip") is None:
                self.specs.update(marker.args)


def test_readme_counts_the_specs_compared_with_their_reference():
    claims = _Claims()
    files = sorted(str(path) for path in Path(__file__).parent.glob("test_fidelity_*.py"))
    assert (
        pytest.main(
            [*files, "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception"], plugins=[claims]
        )
        == 0
    )
    (count,) = stated(README, r"every one of the (\d+) specs with a torchvision, timm or ultralytics reference")
    assert number(count) == len(claims.specs)


def constant(test_module: str, name: str) -> object:
    """A module-level constant of a test module, read from its source (importing it would import torch)."""
    source = (Path(__file__).parent / test_module).read_text(encoding="utf-8")
    return next(
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]
    )


def test_readme_counts_the_specs_onnx_runs_by_default():
    (count,) = stated(README, r"onnx on one spec per structural kind \((\d+) specs")
    assert number(count) == len(constant("test_onnx_backend.py", "KINDS"))


def test_readme_counts_the_fuzzer_s_cases():
    default, deep = stated(
        README,
        r"hardening: ([\d,]+) mutated specs of the zoo per run \(`tests/test_fuzz.py`; "
        r"`--deep` runs ([\d,]+)",
    )
    assert (number(default), number(deep)) == (
        constant("test_fuzz.py", "DEFAULT_CASES"),
        constant("test_fuzz.py", "DEEP_CASES"),
    )


def test_readme_quotes_the_dynamic_ranges_of_the_specs(zoo):
    batch, lo, hi = stated(
        README, r"\(batch range, default (\[\d+, \d+\]); ResNet also declares H, W in (\d+)\.\.(\d+)\)"
    )
    assert json.loads(batch) == Dynamic().batch
    resnets = {
        name: c.resolved.spec.dynamic
        for name, c in built(zoo).items()
        if name.startswith(("resnet", "resnext", "wide_resnet"))
    }
    assert resnets and all(d is not None and d.resolution == [number(lo), number(hi)] for d in resnets.values())


def test_limits_doc_names_the_largest_network_and_its_size(zoo):
    nodes = {name: len(c.graph) for name, c in built(zoo).items()}
    largest = max(nodes, key=nodes.__getitem__)
    name, count = stated(LIMITS, r"\(the largest zoo network, (\w+), has ([\d,]+)\)")
    assert (name, number(count)) == (largest, nodes[largest])
    name, millions = stated(LIMITS, r"\((\w+) has (\d+) million\)")
    assert round(built(zoo)[name].costs.params / 1e6) == number(millions)


def test_limits_doc_names_the_spec_that_needs_the_most_work(zoo):
    over = {name: str(result).splitlines()[0] for name, result in zoo.items() if isinstance(result, SpecErrors)}
    assert not over, f"these specs need more than the {WORK} steps of work docs/limits.md states: {over}"
    with pytest.raises(SpecErrors, match="AS411"):  # and the one it names needs every one of them
        archspec.compile_spec(SPECS / f"{HUNGRIEST}.yaml", limits=work_limit(number(WORK) - 1))


def test_views_doc_counts_the_boxes_of_its_examples(zoo):
    from archspec.views.graph import to_dot

    registry = default_registry()
    examples = re.findall(r"(\w+) \((\d+) IR nodes\) (?:draws )?as (\d+)(?: boxes)?", " ".join(VIEWS.split()))
    assert len(examples) >= 2
    for name, nodes, boxes in examples:
        compiled = built(zoo)[name]
        source = to_dot(compiled.graph, compiled.costs, registry).source
        assert (len(compiled.graph), len(re.findall(r"^\s*n\d+ \[", source, re.M))) == (number(nodes), number(boxes)), (
            name
        )
