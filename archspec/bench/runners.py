"""Runners: what a backend's artifact does in one timed step. A runner factory per backend name.

A runner is called with the input batch and labels and runs one step: a forward pass (inference), or
forward + loss + backward + SGD step (train). The torch runner wraps any nn.Module, so the reference
models use it too. A backend that builds something else (an ONNX session, an AOTInductor package)
adds its factory to RUNNERS; `archspec bench --backend NAME` then times it.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from typing import Protocol

import torch
from torch import nn

from archspec.backends import BuildOptions
from archspec.bench import BenchOptions
from archspec.errors import ArchspecError, did_you_mean, one_of
from archspec.pipeline import Compiled
from archspec.registry import Registry

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Runner(Protocol):
    label: str

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> object: ...


RunnerFactory = Callable[[Compiled, BuildOptions, BenchOptions, Registry], Runner]


class ModuleRunner:
    """An nn.Module placed for the benchmark: on the device; in eval mode and cast to the dtype for
    inference, or in train mode with fp32 weights, autocast and SGD for training; NHWC with
    channels_last; wrapped in torch.compile (default mode) with compile."""

    def __init__(self, label: str, module: nn.Module, options: BenchOptions, device: torch.device):
        self.label = label
        self.train = options.train
        self.dtype = TORCH_DTYPES[options.dtype]
        self.device_type = device.type
        module = module.to(device)
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if options.train:
            module.train()
            self.optimizer: torch.optim.Optimizer | None = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
        else:
            module = module.eval().to(self.dtype)
            self.optimizer = None
        self.model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(module) if options.compile else module

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> object:
        if self.optimizer is None:
            with torch.no_grad():
                return main_output(self.model(x))
        autocast = (
            torch.autocast(self.device_type, dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with autocast:
            out = main_output(self.model(x))
        loss = loss_of(out.float(), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def main_output(out: object) -> torch.Tensor:
    """The network's output: torchvision's segmentation models return {"out": map, "aux": ...}."""
    return out["out"] if isinstance(out, dict) else out  # type: ignore[return-value]


def loss_of(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class scores ([N, C]); the mean square for any other output."""
    return nn.functional.cross_entropy(out, y) if out.dim() == 2 else out.square().mean()


def _torch_runner(compiled: Compiled, build: BuildOptions, options: BenchOptions, registry: Registry) -> Runner:
    device = torch.device(options.device)
    module = registry.backend("torch").build(compiled.graph, build)
    return ModuleRunner(f"archspec ({options.backend})", module, options, device)


RUNNERS: dict[str, RunnerFactory] = {"torch": _torch_runner}


def runner_factory(backend: str, registry: Registry) -> RunnerFactory:
    if backend not in registry.backends:
        raise ArchspecError(
            "AS803",
            f"unknown backend {backend!r}.{did_you_mean(backend, registry.backends)} "
            f"Backends: {one_of(list(registry.backends))}",
        )
    if backend not in RUNNERS:
        raise ArchspecError(
            "AS901", f"backend {backend!r} has no benchmark runner yet; benchmark one of {one_of(list(RUNNERS))}"
        )
    return RUNNERS[backend]
