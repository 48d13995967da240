"""The tensorrt backend (plugins/archspec-tensorrt), installed for real with `pip install --no-deps`.

torch-tensorrt's TensorRT libraries (tensorrt-cu13-libs) cannot be installed on the machines these tests
run on, and there is no GPU: so everything up to the torch-tensorrt call is tested for real (the plugin's
installation and registration, settings, op coverage, the export with the spec's dynamic shapes, the
optimisation profile, the refusal without the toolchain), and only the torch_tensorrt module itself is a
stand-in (`StandIn`, below), at the edge where the real one cannot exist here.

The stand-in's functions have torch-tensorrt 2.14.0's real signatures, read from its wheel with `ast` by
plugins/archspec-tensorrt/tools/read_signatures.py into tools/torch_tensorrt-2.14.0.json (committed, so these
tests need no network; `test_signature_file_is_what_the_wheel_says` re-reads the wheel whenever pip can
fetch it and compares). A keyword the real function does not name (which the real one would silently
swallow into **kwargs) raises in the stand-in, so it fails a test. What the stand-in returns is not
TensorRT's: `compile` returns the program's own module, `save` re-exports the way torch-tensorrt 2.14's
retrace path does (torch.export.export with the arg_inputs and dynamic_shapes it is given), the engine is a
placeholder. `test_real_torch_tensorrt_*` runs the real thing wherever torch_tensorrt and a GPU exist
(benchmarks/gpu_session.sh tensorrt); it skips here.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

import pytest
import torch

import archspec
from archspec.backends.export import dynamic_shapes
from archspec.errors import ArchspecError
from test_plugins import archspec as archspec_cli, installed_plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugins" / "archspec-tensorrt"
sys.path.insert(0, str(PLUGIN_SRC))  # the modules only; the test process's registry never sees the plugin

from archspec_tensorrt.backend import (  # noqa: E402
    Compiled,
    TensorRTBackend,
    compile_program,
    example_input,
    profile,
    require_toolchain,
    save_artifacts,
)
from archspec_tensorrt.settings import Settings, check_signature, parse  # noqa: E402

SIGNATURE_FILE = PLUGIN_SRC / "tools" / "torch_tensorrt-2.14.0.json"
SIGNATURES = json.loads(SIGNATURE_FILE.read_text())
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_plugin(tmp_path_factory, PLUGIN_SRC, "archspec_tensorrt-0.1.0.dist-info")


# -- installed, through the command line ---------------------------------------------------------------
def test_list_shows_the_backend_and_its_package(site: Path) -> None:
    result = archspec_cli("list", path=[site])
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+tensorrt\s+archspec-tensorrt 0\.1\.0 \(entry point 'tensorrt'\)$", result.stdout, re.M)


def test_build_without_torch_tensorrt_names_it_and_exits_1(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "seed.trt.ep"
    result = archspec_cli("build", "specs/seed_cnn.yaml", "--backend", "tensorrt", "-o", str(out), path=[site])
    assert result.returncode == 1
    assert "error: AS810: the tensorrt backend needs the package torch-tensorrt" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_bad_settings_are_refused_before_anything_else(site: Path) -> None:
    result = archspec_cli(
        "build", "specs/seed_cnn.yaml", "--backend", "tensorrt", "--option", "enabled_precisions=fp16", path=[site]
    )
    assert result.returncode == 1 and "AS809: tensorrt: unknown setting(s) ['enabled_precisions']" in result.stderr


def test_check_reports_coverage(site: Path) -> None:
    result = archspec_cli("check", "specs/efficientnet_b0.yaml", "--backend", "tensorrt", path=[site])
    assert result.returncode == 0, result.stderr
    assert re.search(r"^stem\.2 +silu +fallback +decomposed into sigmoid and mul", result.stdout, re.M), result.stdout
    assert "tensorrt: can compile this spec" in result.stdout


# -- settings -------------------------------------------------------------------------------------------
def test_settings_map_to_compile_keywords() -> None:
    from archspec_tensorrt.settings import compile_kwargs

    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    assert compile_kwargs(parse({}), dtypes) == {"require_full_compilation": False, "min_block_size": 1}
    s = parse({"precision": "FP16", "workspace": "2GiB", "optimization_level": "5"})
    assert s == Settings("fp16", 2 * 2**30, False, 5)
    assert compile_kwargs(s, dtypes) == {
        "require_full_compilation": False,
        "min_block_size": 1,
        "enable_autocast": True,
        "autocast_low_precision_type": torch.float16,
        "workspace_size": 2**31,
        "optimization_level": 5,
    }
    assert compile_kwargs(parse({"precision": "bf16"}), dtypes)["autocast_low_precision_type"] is torch.bfloat16
    assert parse({"workspace": "512 MiB"}).workspace == 512 * 2**20 and parse({"workspace": "1000"}).workspace == 1000
    for bad in ({"precision": "int8"}, {"workspace": "lots"}, {"engine": "yes"}, {"optimization_level": "9"}):
        with pytest.raises(ArchspecError, match="AS809"):
            parse(bad)


def test_missing_gpu_is_named() -> None:
    with pytest.raises(ArchspecError, match="AS810: the tensorrt backend needs"):
        require_toolchain(cuda_available=False)  # torch_tensorrt is not installed here either


# -- dynamic shapes -> export and profile (resnet18's: in test_saved_program_keeps_the_dynamic_batch) ------------
def test_profile_of_a_token_input_follows_the_sequence_range(write_spec) -> None:
    spec = write_spec(
        "archspec: 1\nname: tokens\ninput: {shape: [12], dtype: int64}\n"
        "dynamic: {batch: [1, 8], sequence: [4, 64]}\n"
        "layers:\n  - {op: embedding, num: 40, dim: 16}\n  - {op: linear, out: 40}\n"
    )
    compiled = archspec.compile_spec(spec)
    options = archspec.pipeline.build_options(compiled, 0, None)
    prof = profile(compiled.graph, options.dynamic)
    assert (prof.min, prof.opt, prof.max) == ((1, 4), (8, 12), (8, 64))  # opt: batch 32 within [1, 8], its own length
    example = example_input(compiled.graph, options.dynamic, "cpu")
    assert example.dtype == torch.int64 and tuple(example.shape) == prof.opt
    dims = dynamic_shapes(compiled.graph, options.dynamic)  # what export() exports with and save() is given
    assert {axis: (d.min, d.max) for axis, d in dims.items()} == {0: (1, 8), 1: (4, 64)}


def test_coverage_refuses_ops_without_lowering(write_spec) -> None:
    from archspec.backends.coverage import refuse_unsupported
    from archspec.errors import SpecErrors

    graph = archspec.compile_spec(ROOT / "specs/seed_cnn.yaml").graph
    backend = TensorRTBackend()
    backend.table = {k: v for k, v in backend.table.items() if k != "maxpool2d"}
    with pytest.raises(SpecErrors) as info:
        refuse_unsupported(backend.coverage(graph), "tensorrt")
    assert all(e.code == "AS803" and "(op maxpool2d)" in e.message and e.location for e in info.value.errors)


# -- the edge: a stand-in for torch_tensorrt, with its real signatures ----------------------------------------
def real_signature(public: str) -> inspect.Signature:
    """torch-tensorrt 2.14.0's signature of `public`, from the signature file (defaults are not kept: a
    placeholder marks a parameter that has one)."""
    return inspect.Signature(
        [
            inspect.Parameter(
                name, getattr(inspect.Parameter, kind), default="<default>" if has_default else inspect.Parameter.empty
            )
            for name, kind, has_default in SIGNATURES["functions"][public]["parameters"]
        ]
    )


class StandIn:
    """Stands in for the torch_tensorrt module, which cannot be installed here. Each function has the real
    signature (`__signature__`, which the plugin's check_signature reads), refuses any keyword the real one
    does not name, and records its bound arguments in `calls`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

        class dynamo:  # noqa: N801
            compile = staticmethod(
                self._function("torch_tensorrt.dynamo.compile", lambda a: a["exported_program"].module())
            )
            convert_exported_program_to_serialized_trt_engine = staticmethod(
                self._function(
                    "torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine", lambda a: b"engine"
                )
            )

        self.dynamo = dynamo
        self.save = self._function("torch_tensorrt.save", self._save)
        make_input = self._function("torch_tensorrt.Input", lambda a: a["kwargs"])

        class Input:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self.kwargs = make_input(*args, **kwargs)

        self.Input = Input

    def _function(self, public: str, behaviour: Any) -> Any:
        signature = real_signature(public)
        named = {
            p.name
            for p in signature.parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        named |= set(SIGNATURES["functions"][public].get("keywords", ()))  # Input's: read from **kwargs

        def function(*args: Any, **kwargs: Any) -> Any:
            unknown = sorted(set(kwargs) - named)
            if unknown:
                raise TypeError(f"torch-tensorrt {SIGNATURES['version']}'s {public} takes no keyword {unknown}")
            arguments = dict(signature.bind(*args, **kwargs).arguments)
            self.calls.append((public, arguments))
            return behaviour(arguments)

        function.__signature__ = signature  # type: ignore[attr-defined]
        function.__qualname__ = public
        return function

    @staticmethod
    def _save(a: dict[str, Any]) -> None:
        """torch-tensorrt 2.14's save of a GraphModule with retrace=True: torch.export.export with the
        arg_inputs and dynamic_shapes given (_compile.py, save), then torch.export.save."""
        assert a.get("output_format") == "exported_program" and a.get("retrace") is True
        program = torch.export.export(
            a["module"], tuple(a["arg_inputs"]), dynamic_shapes=a.get("dynamic_shapes"), strict=False
        )
        torch.export.save(program, a["file_path"])

    def called(self, public: str) -> list[dict[str, Any]]:
        return [arguments for name, arguments in self.calls if name == public]


def compile_with_stand_in(spec: str, settings: dict[str, str], **overrides: Any) -> tuple[StandIn, Compiled]:
    trt = StandIn()
    compiled = archspec.compile_spec(ROOT / spec, overrides)
    options = archspec.pipeline.build_options(compiled, 0, None)
    program, example, dims = TensorRTBackend().export(compiled.graph, options, "cpu")
    return trt, compile_program(
        trt, program, example, profile(compiled.graph, options.dynamic), parse(settings), DTYPES, dims
    )


def test_compile_and_save_at_the_torch_tensorrt_edge(tmp_path: Path) -> None:
    trt, result = compile_with_stand_in("specs/seed_cnn_bn.yaml", {"precision": "fp16", "workspace": "1GiB"})
    assert isinstance(result, Compiled)
    (made,) = trt.called("torch_tensorrt.Input")
    assert made["kwargs"] == {
        "min_shape": (1, 3, 32, 32),
        "opt_shape": (32, 3, 32, 32),
        "max_shape": (256, 3, 32, 32),
        "dtype": torch.float32,
        "name": "x",
    }
    (call,) = trt.called("torch_tensorrt.dynamo.compile")
    assert call["require_full_compilation"] is False and call["min_block_size"] == 1 and call["workspace_size"] == 2**30
    assert call["enable_autocast"] is True and call["autocast_low_precision_type"] is torch.float16
    assert "kwargs" not in call  # nothing went to **kwargs, where the real function would ignore it
    target = tmp_path / "seed_cnn_bn.trt.ep"
    save_artifacts(trt, result, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_cnn_bn.trt.ep"]  # no engine unless engine=true


def test_saved_program_keeps_the_dynamic_batch(tmp_path: Path) -> None:
    """torch_tensorrt.save gets the program's own dynamic dimensions; without them it re-traces at the
    example's batch (32) and the .trt.ep takes nothing else. Checked on the arguments the plugin passes, and
    by loading what the stand-in's re-export (torch-tensorrt's retrace path) wrote at other batches."""
    trt, result = compile_with_stand_in("specs/resnet18.yaml", {}, resolution=64, num_classes=5)
    # resnet declares dynamic: {batch: [1, 256], resolution: [64, 520]}; opt = batch 32, the spec's own side
    (made,) = trt.called("torch_tensorrt.Input")
    shapes = [made["kwargs"][k] for k in ("min_shape", "opt_shape", "max_shape")]
    assert shapes == [(1, 3, 64, 64), (32, 3, 64, 64), (256, 3, 520, 520)] and tuple(result.example.shape) == shapes[1]
    ranges = {str(s): (r.lower, r.upper) for s, r in result.program.range_constraints.items()}
    assert sorted(ranges.values()) == [(1, 256), (64, 520), (64, 520)], ranges  # the export TensorRT compiles
    target = tmp_path / "resnet18.trt.ep"
    save_artifacts(trt, result, target)
    (call,) = trt.called("torch_tensorrt.save")
    assert tuple(call["arg_inputs"][0].shape) == (32, 3, 64, 64) and "kwargs" not in call
    (dims,) = call["dynamic_shapes"].values()
    # resnet18 declares dynamic: {batch: [1, 256], resolution: [64, 520]}, the profile's min and max
    assert {axis: (d.min, d.max) for axis, d in dims.items()} == {0: (1, 256), 2: (64, 520), 3: (64, 520)}
    module = torch.export.load(str(target)).module()
    for shape in ((1, 3, 64, 64), (3, 3, 96, 80)):
        assert module(torch.randn(*shape)).shape == (shape[0], 5)


def test_engine_gets_only_the_keywords_the_converter_takes(tmp_path: Path) -> None:
    trt, result = compile_with_stand_in(
        "specs/seed_cnn_bn.yaml", {"workspace": "1GiB", "engine": "true", "optimization_level": "4"}
    )
    target = tmp_path / "seed_cnn_bn.trt.ep"
    save_artifacts(trt, result, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_cnn_bn.engine", "seed_cnn_bn.trt.ep"]
    assert [name.rsplit(".", 1)[1] for name, _ in trt.calls] == [
        "Input",
        "compile",
        "save",
        "convert_exported_program_to_serialized_trt_engine",
    ]
    (call,) = trt.called("torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine")
    assert call["workspace_size"] == 2**30 and call["optimization_level"] == 4 and "kwargs" not in call
    assert call["arg_inputs"] is result.inputs


def test_engine_at_low_precision_is_refused_before_compiling() -> None:
    """The plugin README's old example: the converter has no autocast, so an fp16 engine would be fp32."""
    for precision in ("fp16", "bf16"):
        with pytest.raises(ArchspecError, match=r"AS809: tensorrt: engine=true with precision=" + precision):
            parse({"precision": precision, "engine": "true"})


def test_build_refuses_fp16_engine_before_anything(site: Path, tmp_path: Path) -> None:
    result = archspec_cli(
        "build",
        "specs/seed_cnn.yaml",
        "--backend",
        "tensorrt",
        "--option",
        "precision=fp16",
        "--option",
        "engine=true",
        "-o",
        str(tmp_path / "seed.trt.ep"),
        path=[site],
    )
    assert result.returncode == 1 and "AS809: tensorrt: engine=true with precision=fp16" in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())


def test_a_keyword_the_real_function_lacks_is_refused() -> None:
    """The converter of 2.14.0 has no autocast keywords (the plugin once passed them, after the compile)."""
    trt = StandIn()
    convert = trt.dynamo.convert_exported_program_to_serialized_trt_engine
    with pytest.raises(ArchspecError, match=r"AS810.*\['autocast_low_precision_type', 'enable_autocast'\]"):
        check_signature(convert, {"enable_autocast": True, "autocast_low_precision_type": torch.float16})
    with pytest.raises(TypeError, match="takes no keyword"):  # and the stand-in itself refuses it
        convert(None, enable_autocast=True)
    check_signature(trt.dynamo.compile, {"enable_autocast": True, "autocast_low_precision_type": torch.float16})


def test_signature_file_is_what_the_wheel_says(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Re-read torch-tensorrt 2.14.0's wheel (pip download, from the package index) and compare."""
    sys.path.insert(0, str(PLUGIN_SRC / "tools"))
    try:
        import read_signatures
    finally:
        sys.path.remove(str(PLUGIN_SRC / "tools"))
    folder = tmp_path_factory.mktemp("wheel")
    try:
        wheel = read_signatures.download(folder, SIGNATURES["version"])
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        pytest.skip(f"cannot download torch-tensorrt {SIGNATURES['version']}'s wheel here: {exc}")
    fresh = read_signatures.read(wheel)
    assert fresh["version"] == SIGNATURES["version"] and fresh["functions"] == SIGNATURES["functions"]
    assert read_signatures.dumps(fresh).splitlines()[5:] == SIGNATURE_FILE.read_text().splitlines()[5:]


# -- the real torch-tensorrt: on a GPU machine that has it (benchmarks/gpu_session.sh tensorrt) ---------------
real = pytest.mark.skipif(
    importlib.util.find_spec("torch_tensorrt") is None or not torch.cuda.is_available(),
    reason="needs torch-tensorrt 2.14 (with TensorRT's tensorrt-cu13 libraries, which cannot be "
    "installed here) and a CUDA GPU",
)


@real
def test_real_torch_tensorrt_has_the_signatures_the_stand_in_uses() -> None:
    import torch_tensorrt

    assert torch_tensorrt.__version__.startswith(SIGNATURES["version"]), torch_tensorrt.__version__
    for public in SIGNATURES["functions"]:
        obj: Any = torch_tensorrt
        for part in public.split(".")[1:]:
            obj = getattr(obj, part)
        assert [p.name for p in inspect.signature(obj).parameters.values()] == [
            p.name for p in real_signature(public).parameters.values()
        ], public


@real
def test_real_torch_tensorrt_builds_and_loads_at_other_batches(site: Path, tmp_path: Path) -> None:
    """Build seed_cnn_bn for real (fp32 with its engine, and fp16), load each .trt.ep and run it at batches
    other than the profile's opt (32), against the torch backend's module with the same seed."""
    reference = archspec.build(ROOT / "specs/seed_cnn_bn.yaml").eval().cuda()
    for settings in (["--option", "engine=true"], ["--option", "precision=fp16"]):
        out = tmp_path / f"{settings[-1].replace('=', '_')}.trt.ep"
        result = archspec_cli(
            "build", "specs/seed_cnn_bn.yaml", "--backend", "tensorrt", "-o", str(out), *settings, path=[site]
        )
        assert result.returncode == 0, result.stderr
        module = torch.export.load(str(out)).module()
        for batch in (1, 5, 100):
            x = torch.randn(batch, 3, 32, 32, device="cuda")
            with torch.no_grad():
                got, want = module(x), reference(x)
            assert got.shape == (batch, 10)
            torch.testing.assert_close(got.float(), want, atol=5e-2, rtol=5e-2)
    engine = tmp_path / "engine_true.engine"
    assert engine.is_file() and engine.stat().st_size > 0
