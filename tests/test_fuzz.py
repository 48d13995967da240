"""Mutation fuzzing of every spec in specs/ (archspec.testing.fuzz), in the default suite with a fixed
budget; `python -m pytest tests/test_fuzz.py --deep` runs hundreds of thousands of cases.

Every mutated spec must compile or end in our own errors, each with a documented code and a
file:line:column, within the time and memory bounds. A finding is shrunk; keep it as a regression spec in
tests/hostile/ (fuzz_<what>.yaml), where test_hostile.py runs it for good.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archspec.testing.fuzz import fuzz_in_processes, shrink_lines, zoo_seeds

SPECS = Path(__file__).resolve().parents[1] / "specs"
DEFAULT_CASES = 2_500  # about 15 cases per seed; --deep for more
DEEP_CASES = 300_000


def test_mutated_zoo_specs_give_only_located_errors(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    deep = request.config.getoption("--deep")
    cases = DEEP_CASES if deep else DEFAULT_CASES
    workers = max(2, os.cpu_count() or 2) if deep else 2
    seed = int(request.config.getoption("--fuzz-seed"))
    report = fuzz_in_processes(SPECS, cases, workers, rng_seed=seed)
    with capsys.disabled():
        print(f"\nfuzz (seed {seed}): {report.summary()}")
    problems = "\n\n".join(f"{f.seed} / {f.mutation}\n{f.problem}\n--- shrunk spec ---\n{f.text}" for f in report.findings[:5])
    assert not report.findings, f"{len(report.findings)} findings; keep each as tests/hostile/fuzz_<what>.yaml\n{problems}"
    assert report.cases == cases and report.tracebacks == 0
    assert report.seeds == {seed.label for seed in zoo_seeds(SPECS)}, "every spec of the zoo is a seed"
    assert report.compiled > cases // 20 and report.rejected > cases // 2, "the mutations reach both outcomes"
    assert report.located_errors >= report.rejected
    assert report.peak_rss_mb < 2048


def test_shrinking_keeps_the_failure_and_drops_the_rest() -> None:
    text = "\n".join(f"line {k}" for k in range(40)) + "\nBAD\n" + "\n".join(f"tail {k}" for k in range(40))
    assert shrink_lines(text, lambda t: "BAD" in t) == "BAD"
