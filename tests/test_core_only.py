"""A core-only install (`pip install -e .`, no extras) answers every command that needs torch with the extra to
install (AS810, exit 1), never a traceback; and its torch-free commands still work.

The environment is real, not simulated: a venv made with `--without-pip` and without the system site-packages
(so torch, onnx and the rest are not importable: `import torch` fails the way it does on a fresh machine), whose
site-packages holds one `.pth` naming a folder of symlinks to archspec's three dependencies (pydantic, PyYAML,
networkx, and theirs), the repository's `archspec` package, and a dist-info carrying archspec's entry points
(copied from the installed distribution: the built-in ops and backends register through them). About 0.2 s to
make, then one fresh interpreter per command.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import importlib.metadata
import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
    "yaml",
    "_yaml",
    "networkx",
)
TORCH = 'pip install "archspec[torch]"'
TRAIN = 'pip install "archspec[train]"'
ONNX = 'pip install "archspec[onnx]"'


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a venv where only archspec's core and its dependencies are importable."""
    tmp = tmp_path_factory.mktemp("core_only")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    core = tmp / "core"
    core.mkdir()
    for name in CORE:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue  # _yaml is optional (PyYAML without its C extension)
        source = Path(spec.origin)
        (core / (source.parent.name if spec.submodule_search_locations else source.name)).symlink_to(
            source.parent if spec.submodule_search_locations else source
        )
    (core / "archspec").symlink_to(ROOT / "archspec")
    dist = importlib.metadata.distribution("archspec")
    info = core / f"archspec-{dist.version}.dist-info"
    info.mkdir()
    for name in ("METADATA", "entry_points.txt"):
        (info / name).write_text(dist.read_text(name) or "")
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "core.pth").write_text(f"{core}\n")
    interpreter = venv / "bin" / "python"
    probe = subprocess.run([str(interpreter), "-c", "import torch"], capture_output=True, text=True, timeout=60)
    assert "No module named 'torch'" in probe.stderr, "torch must not be importable in the core-only venv"
    return interpreter


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd is the repository (the specs), which is also what `-m` puts first on sys.path: it has no torch
    return subprocess.run([str(python), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


# command line -> the hint it must give
NEEDS_TORCH = {
    (
        "build",
        "specs/seed_cnn.yaml",
        "-o",
        "{tmp}/seed.pt",
    ): f"the torch backend needs the package torch, which is not installed; {TORCH}",
    (
        "build",
        "specs/seed_cnn.yaml",
        "--backend",
        "onnx",
        "-o",
        "{tmp}/seed.onnx",
    ): f"the onnx backend needs the package(s) torch, onnx, onnxscript, which are not installed; {ONNX}",
    (
        "build",
        "specs/seed_cnn.yaml",
        "--backend",
        "aoti",
        "-o",
        "{tmp}/seed.pt2",
    ): f"the aoti backend needs the package torch, which is not installed; {TORCH}",
    (
        "check",
        "specs/seed_cnn.yaml",
        "--backend",
        "torch",
    ): f"the torch backend needs the package torch, which is not installed; {TORCH}",
    (
        "convert-weights",
        "specs/seed_cnn.yaml",
        "{tmp}/w.pt",
        "-o",
        "{tmp}/w.safetensors",
    ): f"archspec convert-weights needs the package(s) torch, which are not installed; {TORCH}",
    (
        "train",
        "specs/seed_cnn.yaml",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--out",
        "{tmp}/run",
    ): f"archspec train needs the package(s) torch, which are not installed; {TRAIN}",
    (
        "eval",
        "specs/seed_cnn.yaml",
        "--weights",
        "{tmp}/w.safetensors",
        "--data",
        "digits",
    ): f"archspec eval needs the package(s) torch, which are not installed; {TRAIN}",
    (
        "compare",
        "seed_cnn",
        "--data",
        "digits",
        "--out",
        "{tmp}/compare",
    ): f"archspec compare needs the package(s) torch, which are not installed; {TRAIN}",
    ("bench", "specs/seed_cnn.yaml"): f"archspec bench needs the package(s) torch, which are not installed; {TORCH}",
}


def test_every_torch_command_names_the_extra_and_exits_1(python: Path, tmp_path: Path) -> None:
    commands = [[arg.format(tmp=tmp_path) for arg in args] for args in NEEDS_TORCH]
    with ThreadPoolExecutor(2) as pool:  # one fresh interpreter each, two at a time
        results = list(pool.map(lambda args: run(python, "-m", "archspec.cli", *args), commands))
    for args, hint, result in zip(commands, NEEDS_TORCH.values(), results):
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode == 1, (args, result.returncode, result.stderr)
        assert f"error: AS810: {hint}" in result.stderr, (args, result.stderr)
    assert not any(tmp_path.iterdir()), "nothing is written when the package is missing"


def test_the_api_raises_archspec_error_as810(python: Path) -> None:
    script = (
        "import archspec\n"
        "try:\n    archspec.build('specs/seed_cnn.yaml')\n"
        "except archspec.ArchspecError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = run(python, "-c", script)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stdout.strip()
        == f"ArchspecError AS810: the torch backend needs the package torch, which is not installed; {TORCH}"
    )


def test_the_training_api_raises_archspec_error_as810(python: Path) -> None:
    script = (
        "import archspec.train as t\n"
        "try:\n    t.train(t.TrainOptions(spec='specs/seed_cnn.yaml', data='digits'))\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = run(python, "-c", script)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("ArchspecError AS810: archspec.train.train needs the package(s) torch"), (
        result.stdout
    )
    assert 'pip install "archspec[train]"' in result.stdout


def test_torch_free_commands_still_work(python: Path) -> None:
    """The core (load, validate, lower, count) runs without torch."""
    result = run(python, "-m", "archspec.cli", "validate", "specs/resnet18.yaml")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("ok: specs/resnet18.yaml: resnet18, 11,689,512 params"), result.stdout
