"""Shared helpers for fidelity tests against reference implementations (torchvision, timm).

The reference model is the oracle: we give it non-trivial batch-norm statistics and random weights,
save its state dict, build our spec from that file with `--weights` semantics, and compare outputs.
For the large models, `random_reference` and `assert_pairs_and_matches` do the same in memory, without
files or either side's own initialisation (see there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
import contextlib
import functools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import archspec
from archspec.backends import BuildOptions
from archspec.backends.torch.backend import TorchBackend
from archspec.backends.torch.weights import pair_state_dict

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
REFERENCE = json.loads((Path(__file__).parent / "reference_models.json").read_text())
TOLERANCE = 1e-5  # max |ours - reference| / max |reference|
# (spec name, override names) of every comparison made, in order: what a test marked
# `fidelity(name, ...)` must have done by its end (tests/conftest.py checks it).
COMPARED: list[tuple[str, frozenset[str]]] = []
# Overrides that leave every layer and width of a spec as it is: a comparison under them checks the spec.
WHOLE_MODEL = frozenset({"resolution", "num_classes"})


def fidelity_params(names: list[str]) -> list[object]:
    """`names` as parameters of a test, each marked `fidelity(name)`: the test compares that spec's
    outputs, whole (at most `WHOLE_MODEL` overridden), with its reference's. test_fidelity_zoo_rest.py
    requires such a test in the default run for every spec with a reference."""
    return [pytest.param(name, id=name, marks=pytest.mark.fidelity(name)) for name in names]


def perturb_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def perturb_zero_tensors(module: nn.Module, seed: int = 0) -> None:
    """Fill every all-zero parameter with small random values: heads that the reference schemes
    zero-initialise (ViT, Mixer) would make every output 0 and hide any difference before them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def save_state_dict(module: nn.Module, path: Path) -> Path:
    """.pt (what torchvision publishes; keeps registration order) or .safetensors (timm; sorted keys)."""
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def assert_matches_reference(
    spec: str | Path,
    reference: nn.Module,
    tmp_path: Path,
    batch: int = 2,
    suffix: str = ".pt",
    train: bool = False,
    **overrides: object,
) -> float:
    """Build `spec` (with `overrides`) from the reference's weights and check both give the same outputs
    on the same input; in train mode both also draw from the same random stream (dropout masks).
    Returns the relative error."""
    reference.train(train)
    perturb_batchnorm(reference)
    weights = save_state_dict(reference, tmp_path / f"reference{suffix}")
    ours = archspec.build(spec, weights=weights, **overrides).train(train)
    shape = archspec.summary(spec, **overrides).input
    return _compare(spec, ours, reference, (batch, *shape), f"{type(reference).__name__}, {suffix}", train, overrides)


def _compare(
    spec: str | Path,
    ours: nn.Module,
    reference: nn.Module,
    shape: tuple[int, ...],
    how: str,
    train: bool,
    overrides: dict[str, object],
) -> float:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(2)
        expected = reference(x)
        if isinstance(expected, dict):  # torchvision's segmentation models: the `out` map is the network's output
            expected = expected["out"]
        torch.manual_seed(2)
        got = ours(x)
    assert got.shape == expected.shape
    error = relative_error(got, expected)
    assert error <= TOLERANCE, f"{spec}: relative error {error:.3g} > {TOLERANCE}"
    COMPARED.append((Path(spec).stem, frozenset(overrides)))
    print(f"fidelity {Path(spec).stem} ({how}, {'train' if train else 'eval'}): relative error {error:.3g}")
    return error


# The large models are compared in memory. Both sides are made on the meta device (no memory, and no
# initialisation: torchvision's and ours cost more than the comparison for models of 100M+ parameters);
# the reference then takes random tensors, and ours takes the reference's own tensors (assign=True: one
# copy in memory) as `--weights` pairs them: `pair_state_dict`, the pairing `load_reference_weights`
# applies to a .pt file's state dict, which keeps the reference's registration order like this one.
# Drawing 2.5 billion random numbers would cost more than the rest (about 10 ns each here), so the
# weights of similar fan-ins are windows, at distinct random offsets, of one stream of uniform values:
# each tensor is uniform random, no two are equal, and a tensor given to the wrong layer changes the output.
_PERIOD = 4_194_301  # a prime: a tensor longer than the stream repeats it, but no two of its rows are equal


@functools.cache
def _unit_stream() -> torch.Tensor:
    return torch.rand(_PERIOD, generator=torch.Generator().manual_seed(8)) * 2 - 1


def _uniform_stream(length: int, bound: float) -> torch.Tensor:
    unit, stream = _unit_stream(), torch.empty(length)
    for start in range(0, length, _PERIOD):
        end = min(start + _PERIOD, length)
        torch.mul(unit[: end - start], bound, out=stream[start:end])
    return stream


def random_reference(reference: nn.Module, seed: int = 0) -> nn.Module:
    """Give `reference`, built on the meta device, random tensors in place of its own initialisation:
    conv and linear weights He-uniform (variance 2 / fan_in, to within a factor 2^(1/4): activations keep
    their scale through the depth); biases uniform in +-0.1; batch norm with running means in +-0.1 and
    variances in [0.5, 1.5]; norm scales in [0.5, 1.5]; any other tensor (class token, position
    embedding, layer scale) in +-1."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {name: t.shape for name, t in reference.state_dict().items()}
    matrices: dict[int, list[str]] = defaultdict(list)  # fan-in, in steps of 2^(1/2) -> weights
    for name, shape in shapes.items():
        if name.endswith("weight") and len(shape) >= 2:
            matrices[round(2 * math.log2(math.prod(shape[1:])))].append(name)
    state: dict[str, torch.Tensor] = {}
    for step, names in matrices.items():
        longest = max(math.prod(shapes[n]) for n in names)
        stream = _uniform_stream(longest + 64 * len(names), math.sqrt(6 / 2 ** (step / 2)))
        offsets = 16 * torch.randperm(4 * len(names), generator=gen)[: len(names)]  # distinct, 64-byte aligned
        for name, offset in zip(names, offsets.tolist()):
            state[name] = stream[offset : offset + math.prod(shapes[name])].view(shapes[name])
    for name, shape in shapes.items():
        if name in state:
            continue
        leaf = name.rsplit(".", 1)[-1]
        uniform = torch.rand(shape, generator=gen) * 2 - 1
        if leaf == "num_batches_tracked":
            state[name] = torch.zeros(shape, dtype=torch.long)
        elif leaf in ("running_var", "weight"):
            state[name] = 1 + 0.5 * uniform
        elif leaf == "running_mean" or leaf.endswith("bias"):
            state[name] = 0.1 * uniform
        else:
            state[name] = uniform
    for name, tensor in state.items():  # as load_state_dict(assign=True) does, without its search per module
        owner, _, leaf = name.rpartition(".")
        module = reference.get_submodule(owner)
        if leaf in module._parameters:
            setattr(module, leaf, nn.Parameter(tensor, requires_grad=False))
        else:
            module.register_buffer(leaf, tensor)
    left = [n for n, t in [*reference.named_parameters(), *reference.named_buffers()] if t.is_meta]
    assert not left, f"tensors outside the state dict, not drawn: {left}"
    return reference.eval()


class _NoFill(TorchFunctionMode):
    """Skips the in-place fills of initialisation (nn.init, timm's trunc_normal_) on meta tensors, which
    have no values to fill: there they run as Python decompositions, a third of the cost of a build."""

    FILLS = frozenset(
        getattr(torch.Tensor, name)
        for name in ("normal_", "uniform_", "fill_", "zero_", "erfinv_", "clamp_", "mul_", "add_", "copy_")
    )

    def __torch_function__(
        self, func: Callable[..., Any], types: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func in self.FILLS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Make modules on the meta device, without running their initialisation."""
    with torch.device("meta"), _NoFill():
        yield


def build_on_meta(spec: str | Path, **overrides: object) -> tuple[nn.Module, archspec.Compiled]:
    """Our module for `spec` on the meta device (shapes only), and the compiled spec whose graph's names
    pair its weights."""
    compiled = archspec.compile_spec(spec, overrides)
    with on_meta():
        return TorchBackend().build(compiled.graph, BuildOptions()), compiled


def assert_pairs_and_matches(
    spec: str | Path,
    reference: nn.Module,
    batch: int = 2,
    built: tuple[nn.Module, archspec.Compiled] | None = None,
    **overrides: object,
) -> float:
    """`spec` (or what `build_on_meta` made of it, `built`) takes the tensors of `reference` (from
    `random_reference`) as `--weights` pairs them, and computes the reference's outputs in eval mode."""
    ours, compiled = built or build_on_meta(spec, **overrides)
    pairing = pair_state_dict(ours.state_dict(), reference.state_dict(), compiled.graph)
    ours.load_state_dict(pairing.mapped, strict=True, assign=True)
    left = [n for n, t in [*ours.named_parameters(), *ours.named_buffers()] if t.is_meta]
    assert not left, f"tensors of ours that no checkpoint tensor reached: {left}"
    # A few small matrix products per layer: one thread is as fast as two on an idle machine, and far
    # faster than two on a shared one (threads wait on each other).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _compare(
            spec,
            ours.eval(),
            reference.eval(),
            (batch, *compiled.costs.input),
            f"{type(reference).__name__}, in memory",
            False,
            overrides,
        )
    finally:
        torch.set_num_threads(threads)
