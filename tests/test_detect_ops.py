"""The ops whose values follow the running input's sizes (archspec/ops/runtime.py): grid, grid_fill, unflatten
and reshape_as. Their static shapes agree with what torch computes at any size, their values with a direct
torch computation (ultralytics' make_anchors where it is installed), they count no parameters or MACs, bad
arguments are located errors, and every backend computes the same at sizes other than the spec's own:
torch eager, the exported .pt2 with a dynamic H and W, torch-source (bit-identical) and ONNX Runtime."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given, settings, strategies as st
import pytest
import torch

import archspec
from archspec.backends import BuildOptions
from archspec.backends.torch.lowering import LOWERINGS
from archspec.cli import main
from archspec.ir import Node
from archspec.ops.runtime import OPS, Grid, GridFill, Unflatten
from archspec.registry import default_registry

SHAPES = {op.name: op for op in OPS}

# Two maps of different sizes (stride 2 and 4 of the input), the four ops on them, and a decode as a YOLO head
# writes it: anchors - distances, times each map's stride.
SPEC = """\
archspec: 1
name: runtime_ops
input: [3, 24, 40]
dynamic: {batch: [1, 4], resolution: [8, 96]}
layers:
  - {name: p3, op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1}
  - {name: p4, op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1}
  - {name: anchors, op: grid, offset: 0.5, from: [p3, p4]}
  - {name: pixels, op: grid, scale: [2, 4], from: [p3, p4]}
  - {name: strides, op: grid_fill, values: [2, 4], from: [p3, p4]}
  - {name: flat3, op: flatten, start: 1, from: p3}
  - {name: flat4, op: flatten, start: 1, from: p4}
  - {name: flat, op: concat, axis: 1, from: [flat3, flat4]}
  - {name: split, op: unflatten, sizes: [2, 4], from: flat}
  - {name: sides, op: transpose, axes: [0, 1]}
  - {op: softmax, axis: 0}
  - {name: pairs, op: flatten, start: 0, end: 1}
  - {name: lt, op: slice, stop: 2}
  - {name: x1y1, op: sub, from: [anchors, lt]}
  - {name: scaled, op: mul, from: [x1y1, strides]}
  - {name: unflat, op: reshape_as, from: [flat4, p4]}
  - {name: back, op: flatten, start: 1}
  - {name: rows, op: slice, stop: 2}
  - {name: out, op: concat, axis: 1, from: [scaled, pixels, rows]}
"""


def reference_grid(maps: list[torch.Tensor], offset: float, scales: list[float]) -> torch.Tensor:
    """The same coordinates computed independently: one (x, y) pair per position, row-major, map after map."""
    rows = []
    for x, s in zip(maps, scales):
        h, w = x.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        rows.append(torch.stack([(xs.reshape(-1) + offset) * s, (ys.reshape(-1) + offset) * s]))
    return torch.cat(rows, 1)


def expected(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SPEC's network, written with plain torch calls."""
    p3 = model.p3(x)
    p4 = model.p4(p3)
    anchors = reference_grid([p3, p4], 0.5, [1.0, 1.0])
    pixels = reference_grid([p3, p4], 0.0, [2.0, 4.0])
    strides = torch.cat(
        [torch.full((1, p3.shape[2] * p3.shape[3]), 2.0), torch.full((1, p4.shape[2] * p4.shape[3]), 4.0)], 1
    )
    flat = torch.cat([p3.flatten(2), p4.flatten(2)], 2)
    sides = flat.reshape(x.shape[0], 2, 4, -1).transpose(1, 2).softmax(1).reshape(x.shape[0], 8, -1)
    scaled = (anchors - sides[:, :2]) * strides
    return torch.cat([scaled, pixels.expand(x.shape[0], -1, -1), p4.flatten(2)[:, :2]], 2)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, archspec.Compiled, torch.nn.Module]:
    path = tmp_path_factory.mktemp("runtime") / "runtime_ops.yaml"
    path.write_text(SPEC)
    compiled = archspec.compile_spec(path)
    options = archspec.pipeline.build_options(compiled, 0, None)
    return path, compiled, default_registry().backend("torch").build(compiled.graph, options).eval()


INPUTS = [(2, 24, 40), (1, 13, 9), (3, 64, 96)]  # the spec's own size, odd sides, a larger one


def test_counts_and_static_shapes(built) -> None:
    path, compiled, _ = built
    costs = archspec.summary(path)
    assert costs.params == 8 * 3 * 9 + 8 + 8 * 8 * 9 + 8  # the two convs only
    assert costs.macs == 12 * 20 * 8 * 27 + 6 * 10 * 8 * 72
    by_name = {layer.name: layer for layer in costs.layers}
    assert by_name["anchors"].output == (2, 12 * 20 + 6 * 10) and by_name["strides"].output == (1, 300)
    assert by_name["split"].output == (2, 4, 300) and by_name["unflat"].output == (8, 6, 10)
    assert all(
        by_name[n].params == 0 and by_name[n].macs == 0 for n in ("anchors", "pixels", "strides", "split", "unflat")
    )


@pytest.mark.parametrize("batch, h, w", INPUTS)
def test_outputs_are_torchs_at_any_size(built, batch: int, h: int, w: int) -> None:
    _, _, model = built
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(model, x), rtol=0, atol=0)


def test_grid_is_ultralytics_make_anchors() -> None:
    tal = pytest.importorskip("ultralytics.utils.tal", reason="ultralytics is not installed")
    maps = [torch.zeros(2, 5, 8, 6), torch.zeros(2, 5, 4, 3), torch.zeros(2, 5, 2, 2)]
    points, strides = tal.make_anchors(maps, torch.tensor([8.0, 16.0, 32.0]), 0.5)
    from archspec.backends.torch import runtime

    torch.testing.assert_close(runtime.grid(*maps, offset=0.5, scale=(1.0,) * 3)[0], points.T, rtol=0, atol=0)
    torch.testing.assert_close(runtime.grid_fill(*maps, values=(8.0, 16.0, 32.0))[0], strides.T, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    sides=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=3),
    offset=st.sampled_from([0.0, 0.5, -1.0]),
    scale=st.sampled_from([1.0, 2.0, 0.25]),
)
def test_grid_shape_property(sides: list[tuple[int, int]], offset: float, scale: float) -> None:
    """The declared shape is what torch computes for any set of maps, and the values are the reference's."""
    from archspec.backends.torch import runtime

    maps = [torch.zeros(1, 2, h, w) for h, w in sides]
    shapes = [(2, h, w) for h, w in sides]
    out = runtime.grid(*maps, offset=offset, scale=(scale,) * len(maps))
    assert tuple(out.shape[1:]) == SHAPES["grid"].shape(Grid(offset=offset, scale=scale), shapes)
    torch.testing.assert_close(out[0], reference_grid(maps, offset, [scale] * len(maps)), rtol=0, atol=0)
    fill = runtime.grid_fill(*maps, values=tuple(float(k) for k in range(len(maps))))
    assert tuple(fill.shape[1:]) == SHAPES["grid_fill"].shape(GridFill(values=tuple(range(len(maps)))), shapes)
    assert fill[0, 0].tolist() == [float(k) for k, (h, w) in enumerate(sides) for _ in range(h * w)]


@settings(max_examples=40, deadline=None)
@given(dims=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_unflatten_shape_property(dims: list[int], data: st.DataObject) -> None:
    axis = data.draw(st.integers(-len(dims), len(dims) - 1))
    parts = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shape = list(dims)
    shape[axis] = 1
    for p in parts:
        shape[axis] *= p
    x = torch.zeros(2, *shape)
    declared = SHAPES["unflatten"].shape(Unflatten(axis=axis, sizes=tuple(parts)), [tuple(shape)])
    lowered = LOWERINGS["unflatten"](
        Node(name="u", op="unflatten", params=Unflatten(axis=axis, sizes=tuple(parts)), inputs=("x",)), [tuple(shape)]
    )
    got = lowered.target(x, *lowered.args)
    assert tuple(got.shape[1:]) == declared
    torch.testing.assert_close(got, torch.unflatten(x, axis % len(shape) + 1, parts), rtol=0, atol=0)


@pytest.mark.parametrize(
    "layer, code, message",
    [
        ("{name: g, op: grid, scale: [1, 2], from: [c, c, c]}", "AS501", "2 value(s) in scale for 3 input map(s)"),
        ("{name: g, op: grid_fill, values: [8, 16], from: [c]}", "AS501", "2 value(s) in values for 1 input map(s)"),
        ("{name: g, op: grid, from: [f]}", "AS501", "needs [C, H, W] feature maps"),
        ("{name: g, op: unflatten, sizes: [3, 3], from: c}", "AS501", "whose product is 9"),
        ("{name: g, op: unflatten, sizes: [], from: c}", "AS403", "sizes"),
        ("{name: g, op: reshape_as, from: [f, input]}", "AS501", "cannot reshape [4, 30]"),
        ("{name: g, op: grid_fill, from: [c]}", "AS403", "values"),
    ],
)
def test_bad_arguments_are_located_errors(write_spec, capsys, layer: str, code: str, message: str) -> None:
    path = write_spec(
        "archspec: 1\nname: t\ninput: [3, 6, 5]\nlayers:\n"
        "  - {name: c, op: conv2d, out: 4, kernel: 1}\n  - {name: f, op: flatten, start: 1}\n"
        f"  - {layer}\n"
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:7:" in err and f": {code}: " in err and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("op", ["grid", "grid_fill", "unflatten", "reshape_as"])
def test_explain_shows_the_docs(capsys, op: str) -> None:
    assert main(["explain", op]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{op} (tensor") and SHAPES[op].doc[:40] in out.replace("\n", " ")


def test_torch_source_is_bit_identical(built) -> None:
    _, compiled, model = built
    code = default_registry().backend("torch-source").build(compiled.graph, BuildOptions()).text
    namespace: dict = {}
    exec(compile(code, "runtime_ops", "exec"), namespace)
    ours = namespace[ast.parse(code).body[-1].name]().eval()  # type: ignore[attr-defined]
    ours.load_state_dict(model.state_dict())
    for batch, h, w in INPUTS:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            assert torch.equal(ours(x), model(x))


def test_export_has_a_dynamic_height_and_width(built, tmp_path: Path) -> None:
    """The .pt2 (torch.export with the spec's dynamic batch and resolution) at sizes it was not traced at."""
    _, compiled, model = built
    options = archspec.pipeline.build_options(compiled, 0, None)
    default_registry().backend("torch").save(model, compiled.graph, tmp_path / "r.pt2", options)
    exported = torch.export.load(str(tmp_path / "r.pt2")).module()
    for batch, h, w in INPUTS:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-6, atol=1e-6)


def test_onnx_runtime_at_other_sizes(built, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _, compiled, model = built
    options = archspec.pipeline.build_options(compiled, 0, None)
    backend = default_registry().backend("onnx")
    backend.save(backend.build(compiled.graph, options), compiled.graph, tmp_path / "r.onnx", options)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    for batch, h, w in INPUTS:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            y = model(x)  # the onnx backend exports the module the torch backend builds (same seed)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert got.shape == y.shape and float((got - y).abs().max() / y.abs().max()) <= 1e-5
