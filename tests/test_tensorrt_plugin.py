"""The tensorrt backend (plugins/archspec-tensorrt), installed for real with `pip install --no-deps`.

torch-tensorrt's TensorRT libraries (tensorrt-cu13-libs) cannot be installed on the machines these tests
run on, and there is no GPU: so everything up to the torch-tensorrt call is tested for real (the plugin's
installation and registration, settings, op coverage, the export with the spec's dynamic shapes, the
optimisation profile, the refusal without the toolchain), and only the torch_tensorrt module itself is a
stand-in (`FakeTorchTensorRT`, below), at the edge where the real one cannot exist here. It records the
call the plugin makes and checks its keywords against torch-tensorrt 2.14's real signature, copied below.
"""

from __future__ import annotations

from pathlib import Path
import re
import sys
from typing import Any

import pytest
import torch

import archspec
from archspec.backends import BuildOptions
from archspec.errors import ArchspecError
from test_plugins import archspec as archspec_cli, installed_plugin, run

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugins" / "archspec-tensorrt"
sys.path.insert(0, str(PLUGIN_SRC))  # the modules only; the test process's registry never sees the plugin

from archspec_tensorrt.backend import (  # noqa: E402
    Compiled, TensorRTBackend, compile_program, profile, require_toolchain, save_artifacts)
from archspec_tensorrt.settings import Settings, parse  # noqa: E402


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
    result = archspec_cli("build", "specs/seed_cnn.yaml", "--backend", "tensorrt", "--option", "enabled_precisions=fp16",
                          path=[site])
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
    s = parse({"precision": "FP16", "workspace": "2GiB", "engine": "true", "optimization_level": "5"})
    assert s == Settings("fp16", 2 * 2**30, True, 5)
    assert compile_kwargs(s, dtypes) == {"require_full_compilation": False, "min_block_size": 1, "enable_autocast": True,
                                         "autocast_low_precision_type": torch.float16, "workspace_size": 2**31,
                                         "optimization_level": 5}
    assert compile_kwargs(parse({"precision": "bf16"}), dtypes)["autocast_low_precision_type"] is torch.bfloat16
    assert parse({"workspace": "512 MiB"}).workspace == 512 * 2**20 and parse({"workspace": "1000"}).workspace == 1000
    for bad in ({"precision": "int8"}, {"workspace": "lots"}, {"engine": "yes"}, {"optimization_level": "9"}):
        with pytest.raises(ArchspecError, match="AS809"):
            parse(bad)


def test_missing_gpu_is_named() -> None:
    with pytest.raises(ArchspecError, match="AS810: the tensorrt backend needs"):
        require_toolchain(cuda_available=False)  # torch_tensorrt is not installed here either


# -- dynamic shapes -> export and profile -----------------------------------------------------------------
def test_profile_and_export_follow_the_spec_dynamic_ranges() -> None:
    compiled = archspec.compile_spec(ROOT / "specs/resnet18.yaml", {"resolution": 64, "num_classes": 5})
    options = archspec.pipeline.build_options(compiled, 0, None)
    prof = profile(compiled.graph, options.dynamic)
    # resnet declares dynamic: {batch: [1, 256], resolution: [64, 520]}; opt = batch 32, the spec's own side
    assert (prof.min, prof.opt, prof.max) == ((1, 3, 64, 64), (32, 3, 64, 64), (256, 3, 520, 520))
    program, example = TensorRTBackend().export(compiled.graph, options, "cpu")
    assert tuple(example.shape) == prof.opt
    module = program.module()
    for shape in ((1, 3, 64, 64), (3, 3, 96, 80)):
        assert module(torch.randn(*shape)).shape == (shape[0], 5)
    ranges = {str(s): (r.lower, r.upper) for s, r in program.range_constraints.items()}
    assert sorted(ranges.values()) == [(1, 256), (64, 520), (64, 520)], ranges


def test_coverage_refuses_ops_without_lowering(write_spec) -> None:
    from archspec.backends.coverage import refuse_unsupported
    from archspec.errors import SpecErrors

    graph = archspec.compile_spec(ROOT / "specs/seed_cnn.yaml").graph
    backend = TensorRTBackend()
    backend.table = {k: v for k, v in backend.table.items() if k != "maxpool2d"}
    with pytest.raises(SpecErrors) as info:
        refuse_unsupported(backend.coverage(graph), "tensorrt")
    assert all(e.code == "AS803" and "(op maxpool2d)" in e.message and e.location for e in info.value.errors)


# -- the edge: a stand-in for torch_tensorrt ----------------------------------------------------------------
# Keyword parameters of torch_tensorrt.dynamo.compile in torch-tensorrt 2.14.0 that this plugin may pass
# (read from the wheel's torch_tensorrt/dynamo/_compiler.py; the real function also takes **kwargs, which
# it silently ignores: that is why the plugin checks names against the signature).
REAL_COMPILE_KEYWORDS = ("arg_inputs", "require_full_compilation", "min_block_size", "enable_autocast",
                         "autocast_low_precision_type", "workspace_size", "optimization_level")


class FakeTorchTensorRT:
    """Stands in for the torch_tensorrt module, which cannot be installed here. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        fake = self

        class Input:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs

        def compile(exported_program: Any, *, arg_inputs: Any = None, require_full_compilation: bool = False,
                    min_block_size: int = 5, enable_autocast: bool = False, autocast_low_precision_type: Any = None,
                    workspace_size: int = 0, optimization_level: Any = None, **kwargs: Any) -> Any:
            fake.calls.append(("compile", dict(arg_inputs=arg_inputs, require_full_compilation=require_full_compilation,
                                               min_block_size=min_block_size, enable_autocast=enable_autocast,
                                               autocast_low_precision_type=autocast_low_precision_type,
                                               workspace_size=workspace_size, kwargs=kwargs)))
            return exported_program.module()

        def convert(exported_program: Any, *, arg_inputs: Any = None, **kwargs: Any) -> bytes:
            fake.calls.append(("convert", kwargs))
            return b"engine"

        convert.__signature__ = __import__("inspect").signature(compile)  # type: ignore[attr-defined]

        class dynamo:  # noqa: N801
            pass

        dynamo.compile = staticmethod(compile)  # type: ignore[attr-defined]
        dynamo.convert_exported_program_to_serialized_trt_engine = staticmethod(convert)  # type: ignore[attr-defined]
        self.Input = Input
        self.dynamo = dynamo

    def save(self, module: Any, path: str, *, output_format: str, arg_inputs: Any, retrace: bool) -> None:
        self.calls.append(("save", output_format))
        torch.export.save(torch.export.export(module, tuple(arg_inputs)), path)


def test_compile_and_save_at_the_torch_tensorrt_edge(tmp_path: Path) -> None:
    trt = FakeTorchTensorRT()
    compiled = archspec.compile_spec(ROOT / "specs/seed_cnn_bn.yaml")
    options = BuildOptions(settings={"precision": "fp16", "workspace": "1GiB", "engine": "true"})
    program, example = TensorRTBackend().export(compiled.graph, archspec.pipeline.build_options(compiled, 0, None), "cpu")
    result = compile_program(trt, program, example, profile(compiled.graph, options.dynamic), parse(options.settings),
                             {"fp16": torch.float16, "bf16": torch.bfloat16})
    assert isinstance(result, Compiled) and set(result.kwargs) <= set(REAL_COMPILE_KEYWORDS)
    name, call = trt.calls[0]
    assert name == "compile" and call["kwargs"] == {}  # nothing landed in **kwargs, where it would be ignored
    assert call["require_full_compilation"] is False and call["min_block_size"] == 1
    assert call["enable_autocast"] and call["autocast_low_precision_type"] is torch.float16 and call["workspace_size"] == 2**30
    (spec_input,) = call["arg_inputs"]
    assert spec_input.kwargs["min_shape"] == (1, 3, 32, 32) and spec_input.kwargs["max_shape"] == (256, 3, 32, 32)
    target = tmp_path / "seed_cnn_bn.trt.ep"
    save_artifacts(trt, result, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_cnn_bn.engine", "seed_cnn_bn.trt.ep"]
    assert [c[0] for c in trt.calls] == ["compile", "save", "convert"] and trt.calls[1][1] == "exported_program"


def test_unknown_keyword_for_the_installed_version_is_refused() -> None:
    from archspec_tensorrt.settings import check_signature

    def compile(exported_program: Any, *, arg_inputs: Any = None, **kwargs: Any) -> None: ...

    with pytest.raises(ArchspecError, match=r"AS810.*\['enable_autocast'\]"):
        check_signature(compile, {"enable_autocast": True})
