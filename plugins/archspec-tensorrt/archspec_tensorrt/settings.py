"""`--option KEY=VALUE` -> the keyword arguments of torch_tensorrt.dynamo.compile and of
convert_exported_program_to_serialized_trt_engine (2.14), checked here.

torch-tensorrt ignores keyword arguments it does not know (they land in **kwargs), and on the dynamo
path `enabled_precisions` is gone: precision follows the model's dtypes, or autocast. Only `compile` has
autocast (`enable_autocast`, `autocast_low_precision_type`); the engine converter does not, so an engine
would be fp32 whatever `precision` says, and `engine=true` with fp16/bf16 is refused here, before anything
is compiled. So every setting is validated here, each function gets only keywords it takes
(`compile_kwargs`, `engine_kwargs`), and both are checked against the installed functions' real signatures
before the first call (`check_signature`). Nothing here imports torch_tensorrt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import inspect
import re
from typing import Any, Literal

from archspec.errors import ArchspecError

Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "bf16")
KEYS = {
    "precision": "fp32 (default), fp16 or bf16: fp16/bf16 use TensorRT autocast (inputs and outputs stay float32; "
    "layers that overflow or reduce deeply stay fp32)",
    "workspace": "TensorRT's workspace limit, e.g. 1GiB, 512MiB or bytes (default: TensorRT's own)",
    "engine": "true: also write <name>.engine, a serialized engine for other TensorRT runtimes (fp32 only: "
    "torch-tensorrt 2.14's engine converter has no autocast)",
    "optimization_level": "0..5, TensorRT's build effort (default 3)",
}
_SIZE = re.compile(r"^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$", re.I)
_UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


@dataclass(frozen=True)
class Settings:
    precision: Precision = "fp32"
    workspace: int = 0  # bytes; 0: TensorRT's default
    engine: bool = False
    optimization_level: int | None = None


def _bad(key: str, value: str) -> ArchspecError:
    return ArchspecError("AS809", f"tensorrt: {key}={value!r} is not valid; {key} is {KEYS[key]}")


def parse(settings: Mapping[str, str]) -> Settings:
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        listed = "; ".join(f"{k}: {v}" for k, v in KEYS.items())
        raise ArchspecError("AS809", f"tensorrt: unknown setting(s) {unknown}. Settings: {listed}")
    precision = settings.get("precision", "fp32").lower()
    if precision not in PRECISIONS:
        raise _bad("precision", settings["precision"])
    workspace = 0
    if "workspace" in settings:
        m = _SIZE.match(settings["workspace"].strip())
        if not m:
            raise _bad("workspace", settings["workspace"])
        workspace = int(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    engine = settings.get("engine", "false").lower()
    if engine not in ("true", "false"):
        raise _bad("engine", settings["engine"])
    level = None
    if "optimization_level" in settings:
        text = settings["optimization_level"]
        if not text.isdigit() or not 0 <= int(text) <= 5:
            raise _bad("optimization_level", text)
        level = int(text)
    if engine == "true" and precision != "fp32":
        raise ArchspecError(
            "AS809",
            f"tensorrt: engine=true with precision={precision}: torch-tensorrt 2.14 writes the "
            "engine with convert_exported_program_to_serialized_trt_engine, which has no autocast, so "
            "the engine would be fp32; use engine=true with precision=fp32, or leave engine out",
        )
    return Settings(precision, workspace, engine == "true", level)


def compile_kwargs(settings: Settings, dtypes: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of torch_tensorrt.dynamo.compile. `dtypes` maps "fp16"/"bf16" to torch dtypes
    (given by the caller so that this module stays torch-free)."""
    kwargs: dict[str, Any] = {"require_full_compilation": False, "min_block_size": 1}
    if settings.precision != "fp32":
        kwargs["enable_autocast"] = True
        kwargs["autocast_low_precision_type"] = dtypes[settings.precision]
    if settings.workspace:
        kwargs["workspace_size"] = settings.workspace
    if settings.optimization_level is not None:
        kwargs["optimization_level"] = settings.optimization_level
    return kwargs


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine: those of
    `compile_kwargs` it takes (no autocast: `parse` refuses an engine at fp16/bf16)."""
    return compile_kwargs(Settings(workspace=settings.workspace, optimization_level=settings.optimization_level), {})


def check_signature(function: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse keyword arguments the installed torch-tensorrt would silently swallow."""
    parameters = inspect.signature(function).parameters
    unknown = sorted(k for k in kwargs if k not in parameters or parameters[k].kind is inspect.Parameter.VAR_KEYWORD)
    if unknown:
        raise ArchspecError(
            "AS810",
            f"the installed torch-tensorrt's {getattr(function, '__qualname__', function)} does "
            f"not take {unknown}; install torch-tensorrt 2.14",
        )
