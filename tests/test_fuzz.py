"""Mutation fuzzing of every spec in specs/ (archspec.testing.fuzz), and of run folders, image files and the
torch-source backend's output (archspec.testing.fuzz_inputs), in the default suite with small fixed budgets;
`python -m pytest tests/test_fuzz.py --deep` runs hundreds of thousands of spec cases and a few hundred of each
other mode (--fuzz-cases N sets the other modes' count for a manual run).

Every mutated spec must compile or end in our own errors, each with a documented code and a
file:line:column, within the time and memory bounds. A finding is shrunk; keep it as a regression spec in
tests/hostile/ (fuzz_<what>.yaml), where test_hostile.py runs it for good.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil

import pytest

from archspec.testing.fuzz import fuzz_in_processes, shrink_lines, zoo_seeds
from archspec.testing.fuzz_inputs import ModeReport, fuzz_image_files, fuzz_run_folders, fuzz_torch_source

SPECS = Path(__file__).resolve().parents[1] / "specs"
DEFAULT_CASES = 2_500  # about 15 cases per seed; --deep for more
DEEP_CASES = 300_000


def test_mutated_zoo_specs_give_only_located_errors(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = request.config.getoption("--deep")
    cases = DEEP_CASES if deep else DEFAULT_CASES
    workers = max(2, os.cpu_count() or 2) if deep else 2
    seed = int(request.config.getoption("--fuzz-seed"))
    report = fuzz_in_processes(SPECS, cases, workers, rng_seed=seed)
    with capsys.disabled():
        print(f"\nfuzz (seed {seed}): {report.summary()}")
    problems = "\n\n".join(
        f"{f.seed} / {f.mutation}\n{f.problem}\n--- shrunk spec ---\n{f.text}" for f in report.findings[:5]
    )
    assert not report.findings, (
        f"{len(report.findings)} findings; keep each as tests/hostile/fuzz_<what>.yaml\n{problems}"
    )
    assert report.cases == cases and report.tracebacks == 0
    assert report.seeds == {seed.label for seed in zoo_seeds(SPECS)}, "every spec of the zoo is a seed"
    assert report.compiled > cases // 20 and report.rejected > cases // 2, "the mutations reach both outcomes"
    assert report.located_errors >= report.rejected
    assert report.peak_rss_mb < 2048


def test_shrinking_keeps_the_failure_and_drops_the_rest() -> None:
    text = "\n".join(f"line {k}" for k in range(40)) + "\nBAD\n" + "\n".join(f"tail {k}" for k in range(40))
    assert shrink_lines(text, lambda t: "BAD" in t) == "BAD"


# The other modes: (default cases, --deep cases). Each default budget runs in a few seconds on 2 cores.
INPUT_CASES = {"run_folders": (4, 300), "image_files": (6, 400), "torch_source": (8, 400)}
SEED_CNN = SPECS / "seed_cnn.yaml"
TORCH_SOURCE_SEEDS = [
    SPECS / "seed_cnn.yaml",
    SPECS / "seed_cnn_bn.yaml",
    SPECS / "lenet5.yaml",
    *(
        SPECS.parent / "tests/specs" / f"{n}.yaml"
        for n in ("residual", "layer_ops", "upsampling_ops", "window_ops", "computed_buffers")
    ),
]


def _cases(request: pytest.FixtureRequest, mode: str) -> int:
    default, deep = INPUT_CASES[mode]
    chosen = request.config.getoption("--fuzz-cases")
    return int(chosen) if chosen is not None else deep if request.config.getoption("--deep") else default


def _check(report: ModeReport, capsys: pytest.CaptureFixture[str], seed: int) -> None:
    with capsys.disabled():
        print(f"\nfuzz (seed {seed}): {report.summary()}")
    shown = "\n".join(report.findings[:8])
    assert not report.findings, f"{len(report.findings)} findings:\n{shown}"


def test_tampered_run_folders_resume_and_evaluate_or_give_located_errors(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed, cases = int(request.config.getoption("--fuzz-seed")), _cases(request, "run_folders")
    report = fuzz_run_folders(SEED_CNN, tmp_path, cases, rng_seed=seed)
    _check(report, capsys, seed)
    assert report.cases == 2 * cases  # train --resume and eval on each tampered folder


def test_mutated_image_files_are_read_or_reported_by_path(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed, cases = int(request.config.getoption("--fuzz-seed")), _cases(request, "image_files")
    report = fuzz_image_files(SEED_CNN, tmp_path, cases, rng_seed=seed)
    _check(report, capsys, seed)
    assert report.cases == cases and report.refused > 0


def test_torch_source_of_mutated_specs_matches_the_torch_backend(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "families").mkdir(parents=True)
    for path in TORCH_SOURCE_SEEDS:
        shutil.copy(path, seeds / path.name)
    shutil.copy(SPECS / "families/lenet.yaml", seeds / "families/lenet.yaml")  # lenet5's family
    seed, cases = int(request.config.getoption("--fuzz-seed")), _cases(request, "torch_source")
    report = fuzz_torch_source(seeds, tmp_path / "work", cases, rng_seed=seed)
    _check(report, capsys, seed)
    assert report.cases == cases and report.worked > 0
