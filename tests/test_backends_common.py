"""What the backends share: the spec's dynamic: dimensions, coverage reports, lazy heavy imports, the docs."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

import archspec
from archspec.backends import DynamicDims, Range
from archspec.backends.coverage import Support
from archspec.cli import main
from archspec.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
TINY = (
    "archspec: 1\nname: t\ninput: [3, 16, 16]\n{dynamic}layers:\n  - {{name: conv, op: conv2d, out: 4, kernel: 3}}\n"
    "  - {{name: pool, op: adaptive_avgpool2d, size: 1}}\n  - {{op: flatten}}\n"
)


def test_dynamic_defaults_and_declared_ranges(write_spec) -> None:
    assert archspec.pipeline.dynamic_dims(archspec.compile_spec(write_spec(TINY.format(dynamic="")))) == DynamicDims()
    dims = archspec.pipeline.dynamic_dims(archspec.compile_spec(ROOT / "specs/resnet50.yaml"))
    assert (dims.batch, dims.resolution) == (Range(1, 32, 256), Range(64, 224, 520))
    assert dims.source is not None and dims.source.file.endswith("resnet.yaml")
    three = archspec.compile_spec(
        write_spec(TINY.format(dynamic="dynamic: {batch: [2, 4, 8], resolution: [8, 16, 32]}\n"))
    )
    assert archspec.pipeline.dynamic_dims(three) == DynamicDims(
        Range(2, 4, 8), Range(8, 16, 32), three.resolved.doc.locate(("dynamic",))
    )


@pytest.mark.parametrize(
    "value",
    [
        "{batch: [8, 2]}",
        "{batch: [0, 4]}",
        "{batch: [1]}",
        "{resolution: [1, 2, 3, 4]}",
        "{batch: [1, 2.5]}",
        "{size: [1, 2]}",
    ],
)
def test_bad_dynamic_is_a_located_validation_error(value: str, write_spec, capsys) -> None:
    path = write_spec(TINY.format(dynamic=f"dynamic: {value}\n"))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:" in err and ("AS203" in err or "AS202" in err), err


def test_resolution_range_must_hold_the_spec_size_and_fit_the_network(write_spec, tmp_path: Path, capsys) -> None:
    path = write_spec(TINY.format(dynamic="dynamic: {resolution: [32, 64]}\n"))
    assert main(["build", str(path), "-o", str(tmp_path / "t.pt2")]) == 1
    assert (
        f"AS808: {path}:4:10: dynamic: resolution [32, 64] must include the input's own size [16, 16]"
        in capsys.readouterr().err
    )
    # A ViT's patch grid and position embedding fix its side: a resolution range is refused at export.
    family = (
        (ROOT / "specs/families/vit.yaml").read_text().replace("input:", "dynamic: {resolution: [32, 64]}\ninput:", 1)
    )
    vit = write_spec(family, name="vit.yaml")
    args = [
        "build",
        str(vit),
        "-o",
        str(tmp_path / "v.pt2"),
        "--set",
        "resolution=32",
        "--set",
        "num_layers=1",
        "--set",
        "hidden_dim=8",
        "--set",
        "num_heads=2",
        "--set",
        "mlp_dim=8",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "AS808" in err and "vit.yaml:" in err and "does not take an input of shape" in err and "Traceback" not in err
    assert not any(tmp_path.glob("*.pt2")) and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_check_and_validate_import_no_heavy_dependency() -> None:
    probe = (
        "import sys, archspec\n"
        "from archspec import pipeline\n"
        "c = pipeline.compile_spec('specs/vit_b_16.yaml')\n"
        "for b in ('onnx', 'aoti', 'torch-source'): pipeline.coverage(c, b)\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'jinja2', 'torch_tensorrt') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_builtin_backend_is_registered_and_covers_every_builtin_op() -> None:
    registry = default_registry()
    assert {"torch", "torch-source", "onnx", "aoti"} <= set(registry.backends)
    graph = archspec.compile_spec(ROOT / "specs/vit_b_16.yaml").graph
    for name in ("torch", "torch-source", "onnx", "aoti"):
        backend = registry.backend(name)
        assert all(backend.supports(op) for op in registry.op_names()), name
        assert backend.unsupported(graph) == []


def test_docs_coverage_table_matches_the_tables() -> None:
    sys.path.insert(0, str(ROOT / "plugins" / "archspec-tensorrt"))
    from archspec.backends.aoti.coverage import COVERAGE as AOTI
    from archspec.backends.onnx.coverage import COVERAGE as ONNX
    from archspec_tensorrt.coverage import COVERAGE as TRT

    def cell(table: dict[str, object], op: str) -> str:
        v = table.get(op)
        if v is None:
            return "no"
        if isinstance(v, Support):
            return v.level + (f": {v.note}" if v.note else "")
        return "depends on shapes (see below)"

    docs = (ROOT / "docs/backends.md").read_text()
    for op in default_registry().op_names():
        row = f"| `{op}` | native | {cell(ONNX, op)} | {cell(AOTI, op)} | {cell(TRT, op)} |"  # type: ignore[arg-type]
        assert row in docs, f"docs/backends.md: update the row of {op}: {row}"
