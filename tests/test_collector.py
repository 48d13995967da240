"""archspec.collector: the collector is held off around torch's imports and the `archspec` process leaves its
objects to the operating system at exit, while main() (what tests and embedding programs call) freezes
nothing. What this saves is measured by benchmarks/train_pipeline.py, not here."""

from __future__ import annotations

import gc
from pathlib import Path
import subprocess
import sys

from archspec import collector

ROOT = Path(__file__).resolve().parent.parent


def test_paused_holds_collection_off_and_restores_the_setting() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block restores what it found: disabled
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()


def test_paused_restores_collection_when_the_block_raises() -> None:
    try:
        with collector.paused():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_command_freezes_its_objects_and_main_does_not() -> None:
    argv = "['archspec', 'validate', 'specs/lenet5.yaml']"
    for entry, frozen in (("command", True), ("main", False)):
        out = run_python(
            f"import gc, sys\nfrom archspec import cli\nsys.argv = {argv}\n"
            f"code = cli.{entry}()\nprint(code, gc.get_freeze_count())"
        )
        code, count = out.split()
        assert code == "0" and (int(count) > 10_000) == frozen, (entry, out)


def test_both_ways_of_starting_archspec_go_through_the_command() -> None:
    from importlib.metadata import entry_points  # the installed console script, as pip wrote it

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "archspec"]
    assert script.value == "archspec.cli:command"
    out = run_python(
        "import gc, runpy, sys\nsys.argv = ['archspec', 'validate', 'specs/lenet5.yaml']\ntry:\n"
        "    runpy.run_module('archspec', run_name='__main__')\nexcept SystemExit as exit:\n"
        "    print(exit.code, gc.get_freeze_count())"
    )
    code, count = out.split()
    assert code == "0" and int(count) > 10_000  # python -m archspec froze its objects before exiting
