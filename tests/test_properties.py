"""Property-based tests: random specs (archspec.testing.strategies) against real torch modules.

* Valid specs: the static figures (every node's shape, parameters, MACs) equal the strategy's own
  torch-formula figures, and the built torch.fx module agrees: output shape in train and eval mode,
  parameter count, MACs = FlopCounterMode's FLOPs / 2, and every intermediate activation's shape.
* Invalid specs: compiling raises SpecErrors only, every error located in the file with a known code,
  one of the expected codes present (on the expected line where the mutation knows it); the CLI
  prints `path:line:col: ASxxx: message` lines and exits 1.
* The core never imports torch (compile_spec, and `archspec validate` under -X importtime).

Bugs these properties found are pinned below as minimal reproductions (`test_found_*`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path
import re
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec import cli
from archspec.errors import CODES, SpecErrors
from archspec.testing.strategies import MUTATIONS, InvalidSpec, SpecFacts, invalid_specs, valid_specs

ROOT = Path(__file__).resolve().parents[1]
_files = itertools.count()
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("property_specs")


def write(folder: Path, text: str) -> Path:
    path = folder / f"spec{next(_files)}.yaml"
    path.write_text(text)
    return path


# -- valid specs ------------------------------------------------------------------------------------
def activation_shapes(module: torch.fx.GraphModule, graph, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """IR node name -> the per-sample shape of its real activation, for every IR op node but identity.

    The fx graph has the IR's op nodes in the IR's order: one fx node each, none for identity (an
    alias), and n-1 for an add or mul of n inputs (pairwise; the last is the node). Matching by order
    does not depend on fx's renaming (a layer named `getattr` becomes `getattr_1`); modules must sit
    at the IR's dotted names."""
    from archspec.backends.torch.sequence import check_input  # the forward's first call: the input's dtype check

    ShapeProp(module).propagate(x)
    calls = iter(
        [
            n
            for n in module.graph.nodes
            if n.op in ("call_module", "call_function", "call_method") and n.target is not check_input
        ]
    )
    found: dict[str, tuple[int, ...]] = {}
    for node in graph.ops:
        if node.op == "identity":
            continue
        for _ in range(max(1, len(node.inputs) - 1) if node.op in ("add", "mul") else 1):
            call = next(calls)
        if call.op == "call_module":
            assert call.target == node.name
        elif node.name.replace(".", "_") != call.name:
            assert "_" in call.name, (node.name, call.name)  # fx made the label unique or legal
        found[node.name] = tuple(call.meta["tensor_meta"].shape[1:])
    assert next(calls, None) is None, "fx nodes left over after the IR's nodes"
    return found


def check_against_torch(path: Path, facts: SpecFacts) -> None:
    compiled = archspec.compile_spec(path)
    costs = compiled.costs
    ir_shapes = {node.name: node.shape for node in compiled.graph.ops}
    assert ir_shapes == dict(facts.shapes), "IR node names/shapes differ from the strategy's torch formulas"
    assert {node.name: node.op for node in compiled.graph.ops} == dict(facts.ops)
    assert (costs.input, costs.output) == (facts.input, facts.output)
    assert costs.params == facts.params
    assert costs.macs == facts.macs

    # An override builds another network (expect: is not checked then): only the classifier changes.
    features, classes = list(facts.shapes.values())[-2][-1], facts.output[0]
    other = archspec.compile_spec(path, {"num_classes": classes + 3}).costs
    assert other.output == (classes + 3,)
    assert (other.params - costs.params, other.macs - costs.macs) == (3 * (features + 1), 3 * features)

    module = archspec.build(path)
    assert isinstance(module, torch.fx.GraphModule) and module.training
    assert sum(p.numel() for p in module.parameters()) == facts.params

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *facts.input, generator=gen)
    assert tuple(module(x).shape) == (2, *facts.output)  # train mode: batch statistics, dropout on
    module.eval()
    with torch.no_grad():
        assert tuple(module(x).shape) == (2, *facts.output)
        real = activation_shapes(module, compiled.graph, x)
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate of convolutions and matrix products (bias
    # adds, norms, pooling and activations are not counted): exactly our MAC convention. It misses
    # attention in two places, so we steer around them: without grad, nn.MultiheadAttention takes its
    # fused fast path (_native_multi_head_attention, counted as 0), and the CPU flash kernel of
    # scaled_dot_product_attention is not counted either; the math backend is plain bmm.
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x[:1])
    assert counter.get_total_flops() == 2 * facts.macs
    expected = {n.name: n.shape for n in compiled.graph.ops if n.op != "identity"}
    wrong = {name: (expected[name], shape) for name, shape in real.items() if shape != expected[name]}
    assert not wrong, f"IR shape vs real activation shape: {wrong}"


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@settings(max_examples=40, **SETTINGS)
@given(case=valid_specs())
def test_valid_specs_match_torch(case: tuple[str, SpecFacts], spec_dir: Path) -> None:
    text, facts = case
    path = write(spec_dir, text)
    try:
        check_against_torch(path, facts)
    except SpecErrors as exc:
        pytest.fail(f"a valid spec was rejected:\n{exc}\n--- spec ---\n{text}")


@settings(max_examples=15, **SETTINGS)
@given(case=valid_specs(max_stages=4, stages=("misc",)))
def test_single_layer_ops_match_torch(case: tuple[str, SpecFacts], spec_dir: Path) -> None:
    """Only the stage of single-layer ops (pooling, norms over any axis, layer scale, constant padding,
    activations...), which the mixed draw above reaches a few times per run."""
    text, facts = case
    check_against_torch(write(spec_dir, text), facts)


@settings(max_examples=5, **SETTINGS)
@given(case=valid_specs(max_stages=2, stages=("windows",)))
def test_window_ops_match_torch(case: tuple[str, SpecFacts], spec_dir: Path) -> None:
    """Only the stage of Swin's ops (roll, slice, gather, parameter, matmul, constant, attention with biases,
    the mask's sub/abs/clamp/scale, normalize, exp), which the mixed draw above reaches a few times per run."""
    text, facts = case
    check_against_torch(write(spec_dir, text), facts)


def test_residual_example_matches_torch() -> None:
    """One fixed spec through the same checks (the tiny residual network the codegen tests use)."""
    compiled = archspec.compile_spec(ROOT / "tests/specs/residual.yaml")
    facts = SpecFacts(
        compiled.costs.input,
        compiled.costs.output,
        compiled.costs.params,
        compiled.costs.macs,
        {n.name: n.shape for n in compiled.graph.ops},
        {n.name: n.op for n in compiled.graph.ops},
    )
    check_against_torch(ROOT / "tests/specs/residual.yaml", facts)


# -- invalid specs ----------------------------------------------------------------------------------
def check_rejected(path: Path, case: InvalidSpec) -> list:
    try:
        archspec.compile_spec(path)
    except SpecErrors as exc:
        errors = exc.errors
    except Exception as exc:  # noqa: BLE001 - anything but SpecErrors is the bug we look for
        pytest.fail(f"{case.mutation}: {type(exc).__name__}: {exc}\n--- spec ---\n{case.text}")
    else:
        pytest.fail(f"{case.mutation}: the spec was accepted\n--- spec ---\n{case.text}")
    lines = case.text.count("\n") + 1
    shown = "\n".join(map(str, errors))
    for e in errors:
        assert e.code in CODES, shown
        assert e.location is not None and e.location.file == str(path), shown
        assert 1 <= e.location.line <= lines and e.location.column >= 1, shown
    hits = [e for e in errors if e.code in case.codes]
    assert hits, f"{case.mutation}: expected one of {sorted(case.codes)}, got:\n{shown}\n--- spec ---\n{case.text}"
    if case.line is not None:
        assert any(e.location.line == case.line for e in hits), (
            f"{case.mutation}: expected an error on line {case.line}, got:\n{shown}\n--- spec ---\n{case.text}"
        )
    return errors


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_invalid_specs_fail_with_located_errors(kind: str, spec_dir: Path) -> None:
    @settings(max_examples=15, **SETTINGS)
    @given(case=invalid_specs([kind]))
    def check(case: InvalidSpec) -> None:
        check_rejected(write(spec_dir, case.text), case)

    check()


ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>AS\d{3}): (?P<message>\S.*)$")


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=25, **SETTINGS)
@given(case=invalid_specs(list(MUTATIONS)))
def test_cli_validate_prints_one_line_per_error(case: InvalidSpec, spec_dir: Path) -> None:
    path = write(spec_dir, case.text)
    code, out, err = run_cli("validate", str(path))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert re.fullmatch(r"\d+ errors?", lines[-1]), err
    assert int(lines[-1].split()[0]) == len(lines) - 1, err
    for line in lines[:-1]:
        match = ERROR_LINE.match(line)
        assert match, f"not file:line:col: CODE: message: {line!r}"
        assert (
            match["file"] == str(path) and match["code"] in CODES and int(match["line"]) >= 1 and int(match["col"]) >= 1
        )
    assert any(ERROR_LINE.match(line)["code"] in case.codes for line in lines[:-1]), err  # type: ignore[index]


@settings(max_examples=5, **SETTINGS)
@given(case=valid_specs(max_stages=3))
def test_cli_validate_accepts_valid_specs(case: tuple[str, SpecFacts], spec_dir: Path) -> None:
    text, facts = case
    path = write(spec_dir, text)
    code, out, err = run_cli("validate", str(path))
    assert (code, err) == (0, "")
    assert (
        out.startswith(f"ok: {path}: ") and f"{facts.params:,} params" in out and f"output {list(facts.output)}" in out
    )


# -- bugs the properties found, minimal reproductions ---------------------------------------------------------
HEAD = "archspec: 1\nname: t\ninput: [3, 16, 16]\nlayers:\n"
DEGENERATE = {
    "conv_stride_0": "  - {op: conv2d, out: 4, kernel: 3, stride: 0}\n",  # ZeroDivisionError
    "maxpool_kernel_0": "  - {op: maxpool2d, kernel: 0}\n",  # ZeroDivisionError
    "avgpool_stride_0": "  - {op: avgpool2d, kernel: 2, stride: 0}\n",  # ZeroDivisionError
    "adaptive_size_0": "  - {op: adaptive_avgpool2d, size: 0}\n",  # GraphError from Graph.lint
    "adaptive_size_negative": "  - {op: adaptive_avgpool2d, size: [-1, 2]}\n",  # GraphError
    "conv_kernel_0": "  - {op: conv2d, out: 4, kernel: 0}\n",  # accepted: [4, 17, 17]
    "conv_kernel_negative": "  - {op: conv2d, out: 4, kernel: -1}\n",  # accepted: [4, 18, 18]
    "conv_dilation_0": "  - {op: conv2d, out: 4, kernel: 3, dilation: 0}\n",  # accepted
    "conv_padding_negative": "  - {op: conv2d, out: 4, kernel: 3, padding: -1}\n",  # accepted: [4, 12, 12]
    "maxpool_dilation_0": "  - {op: maxpool2d, kernel: 2, dilation: 0}\n",  # accepted
    "avgpool_padding_negative": "  - {op: avgpool2d, kernel: 2, padding: -1}\n",  # accepted: [3, 7, 7]
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_found_degenerate_sizes_are_rejected(name: str, write_spec) -> None:
    path = write_spec(HEAD + DEGENERATE[name])
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(path)
    assert {e.code for e in info.value.errors} <= {"AS403", "AS501"}


LAX = {
    "repeat_true": "  - {op: relu, repeat: true}\n",  # read as repeat: 1
    "if_one": "  - {op: relu, if: 1}\n  - {op: relu}\n",  # read as if: true
    "mean_repeated_axis": "  - {op: mean, axes: [0, 0]}\n",  # compiles to [16, 16]; torch.mean rejects dim 1 twice
}


@pytest.mark.parametrize("name", sorted(LAX))
def test_found_lax_values_are_rejected(name: str, write_spec) -> None:
    with pytest.raises(SpecErrors):
        archspec.compile_spec(write_spec(HEAD + LAX[name]))


def test_found_layer_named_self(write_spec) -> None:
    path = write_spec(
        "archspec: 1\nname: t\ninput: [3, 4, 5]\nlayers:\n"
        "  - {name: self, op: relu}\n  - {name: fc, op: linear, out: 3}\n"
    )
    try:
        module = archspec.build(path)
    except SpecErrors:
        return  # rejecting the name is a fix too
    assert module(torch.randn(2, 3, 4, 5)).shape == (2, 3, 4, 3)


def test_found_broadcast_of_different_ranks_is_rejected(write_spec) -> None:
    """torch broadcasts the batched tensors, so a shorter sample would meet the batch axis."""
    path = write_spec(
        "archspec: 1\nname: t\ninput: [3, 4, 5]\nlayers:\n"
        "  - {name: m, op: mean, axes: [0, 1]}\n  - {name: s, op: add, from: [input, m]}\n"
    )
    with pytest.raises(SpecErrors) as info:
        archspec.compile_spec(path)
    assert [e.code for e in info.value.errors] == ["AS501"] and "same rank" in info.value.errors[0].message


# -- the core never imports torch -------------------------------------------------------------------
def test_compile_does_not_import_torch() -> None:
    code = (
        "import archspec, sys; c = archspec.compile_spec('specs/seed_cnn.yaml'); "
        "assert c.costs.params == 66706; assert 'torch' not in sys.modules, 'torch was imported'; "
        "import archspec.testing.strategies; assert 'torch' not in sys.modules, 'the strategies import torch'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
