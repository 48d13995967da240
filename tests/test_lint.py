"""ruff's lint and format check over the code (the settings are [tool.ruff] in pyproject.toml; ruff is pinned
in the dev extra, so a new release cannot fail the suite by itself). Skips where ruff is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ["archspec", "tests", "plugins", "benchmarks"]


def _ruff() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:  # the pip package: its binary, run through this Python
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]' installs the pinned version)")
    return [found]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_ruff(), *args, *TREES], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_finds_nothing():
    done = _run("check", "--no-cache", "--output-format", "concise")
    assert done.returncode == 0, f"ruff check:\n{done.stdout}{done.stderr}"


def test_ruff_format_would_change_nothing():
    done = _run("format", "--check", "--no-cache")
    assert done.returncode == 0, (
        f"ruff format --check (run `ruff format {' '.join(TREES)}`):\n{done.stdout}{done.stderr}"
    )
