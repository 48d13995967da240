"""YOLOv8 and YOLO11 against ultralytics (tests/yolo_reference.py: DetectionModel from ultralytics' own YAML).

The specs' figures are ultralytics' (parameters; MACs as FlopCounterMode's total / 2 in eval mode, the DFL
conv included), and, with ultralytics' seeded weights loaded through `--weights` (every tensor paired by
name), the decoded eval output [84, anchors] is ultralytics' at 640 and 1280 px, and so is the output of
every one of its layers (model.model[i] against the spec's layer model.i), which catches what the decoded
output barely shows. The exported program takes any input side that is a multiple of 32, non-square too:
anchors and strides come from the running feature maps. Skipped when ultralytics is not importable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import fx

import yolo_reference

if (_why := yolo_reference.available()) is not None:
    pytest.skip(_why, allow_module_level=True)

import archspec
from archspec.backends.torch.weights import pair_state_dict
from reference import COMPARED, SPECS, TOLERANCE, relative_error

FAMILIES = SPECS / "families"


def build_ours(name: str, tmp_path: Path, side: int, **overrides: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ultralytics' model, ours built from its state dict saved as a .pt file) at input side `side`; a `width`
    override applies to both."""
    reference = yolo_reference.build(name, width=overrides.get("width"))  # type: ignore[arg-type]
    weights = tmp_path / f"{name}.pt"
    torch.save(yolo_reference.state_dict(reference), weights)
    spec = SPECS / f"{name}.yaml" if (SPECS / f"{name}.yaml").exists() else FAMILIES / f"{name.rstrip('nsmlx')}.yaml"
    variant = None if spec.parent == SPECS else name
    ours = archspec.build(spec, weights=weights, variant=variant, resolution=side, **overrides).eval()
    return reference, ours


@pytest.mark.parametrize("name", sorted(yolo_reference.FIGURES))
def test_parameters_are_ultralytics(name: str) -> None:
    params, macs = yolo_reference.FIGURES[name]
    reference = yolo_reference.build(name)
    assert sum(p.numel() for p in reference.parameters()) == params
    costs = archspec.summary(SPECS / f"{name}.yaml")
    assert (costs.params, costs.macs, costs.input, costs.output) == (params, macs, (3, 640, 640), (84, 8400))
    frozen = sum(p.numel() for p in reference.parameters() if not p.requires_grad)  # DFL's integral conv
    assert frozen == 16 and costs.trainable_params == params - frozen


def test_every_tensor_pairs_by_name(tmp_path: Path) -> None:
    for name in ("yolov8n", "yolo11n"):
        reference = yolo_reference.build(name)
        compiled = archspec.compile_spec(SPECS / f"{name}.yaml")
        ours = archspec.build(SPECS / f"{name}.yaml")
        pairing = pair_state_dict(ours.state_dict(), yolo_reference.state_dict(reference), compiled.graph)
        assert pairing.by_position == 0 and pairing.by_name == len(ours.state_dict()) == len(reference.state_dict())


# 640 px runs always; 1280 px and the s scale are the full-size checks that `-m "not slow"` leaves out.
CASES = [
    ("yolov8n", 640, ()),
    ("yolo11n", 640, ()),
    ("yolov8n", 1280, pytest.mark.slow),
    ("yolo11n", 1280, pytest.mark.slow),
    ("yolov8s", 640, pytest.mark.slow),
]


@pytest.mark.parametrize(
    "name, side",
    [pytest.param(n, s, id=f"{n}-{s}", marks=[pytest.mark.fidelity(n), *([m] if m else [])]) for n, s, m in CASES],
)
def test_output_matches_ultralytics(name: str, side: int, tmp_path: Path) -> None:
    """At 640 px the reference's forward is also counted: the MACs are the spec's figure (FlopCounterMode / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    reference, ours = build_ours(name, tmp_path, side)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    with FlopCounterMode(display=False) as counter:
        expected = yolo_reference.output(reference, x)
    if side == 640:
        assert (
            counter.get_total_flops() // 2
            == yolo_reference.FIGURES[name][1]
            == archspec.summary(SPECS / f"{name}.yaml").macs
        )
    with torch.no_grad():
        got = ours(x)
    assert got.shape == expected.shape == (1, 84, 21 * side * side // 1024)
    error = relative_error(got, expected)
    print(f"fidelity {name} at {side} px: relative error {error:.3g}")
    assert error <= TOLERANCE
    COMPARED.append((name, frozenset({"resolution"})))


class _Recorder(fx.Interpreter):
    """Runs the GraphModule and keeps a copy of every node's value (a copy: later in-place ops may reuse it)."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.values: dict[str, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> object:
        value = super().run_node(n)
        if isinstance(value, torch.Tensor):
            self.values[n.name] = value.detach().clone()
        return value


def layer_outputs(name: str, ours: fx.GraphModule, x: torch.Tensor, side: int) -> list[torch.Tensor]:
    """Our value of each of ultralytics' layers: layer model.i's output is the last node of its scope."""
    graph = archspec.compile_spec(SPECS / f"{name}.yaml", {"resolution": side}).graph
    names = [node.name for node in graph.ops]
    recorder = _Recorder(ours)
    with torch.no_grad():
        recorder.run(x)
    outputs, i = [], 0
    while any(n == f"model.{i}" or n.startswith(f"model.{i}.") for n in names):
        last = [n for n in names if n == f"model.{i}" or n.startswith(f"model.{i}.")][-1]
        outputs.append(recorder.values[last.replace(".", "_")])
        i += 1
    return outputs


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_every_layer_matches_ultralytics(name: str, tmp_path: Path) -> None:
    side = 320
    reference, ours = build_ours(name, tmp_path, side)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(2))
    expected = yolo_reference.layer_outputs(reference, x)
    got = layer_outputs(name, ours, x, side)
    assert len(got) == len(expected) == len(reference.model)
    errors = []
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape, f"layer {i}: {list(a.shape)} != {list(b.shape)}"
        errors.append(relative_error(a, b))
    print(f"{name} at {side} px, relative error per layer: " + ", ".join(f"{i}: {e:.2g}" for i, e in enumerate(errors)))
    assert max(errors) <= TOLERANCE, [(i, e) for i, e in enumerate(errors) if e > TOLERANCE]


def test_a_wrong_layer_shows(tmp_path: Path) -> None:
    """The per-layer comparison sees a small change deep inside: SPPF's cv1 without its SiLU (ultralytics' newer
    SPPF rows) changes layer 9 by far more than the tolerance."""
    side = 128
    reference, ours = build_ours("yolov8n", tmp_path, side)
    reference.model[9].cv1.act = torch.nn.Identity()
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(2))
    expected = yolo_reference.layer_outputs(reference, x)
    got = layer_outputs("yolov8n", ours, x, side)
    assert max(relative_error(a, b) for a, b in zip(got[:9], expected[:9])) <= TOLERANCE
    assert relative_error(got[9], expected[9]) > 100 * TOLERANCE


def test_exported_program_takes_any_multiple_of_32(tmp_path: Path) -> None:
    """torch.export with a dynamic batch and a dynamic H and W (multiples of 32), at sizes it was not traced at,
    non-square included, against ultralytics."""
    reference, ours = build_ours("yolo11n", tmp_path, 256)
    h, w = torch.export.Dim("h", min=2, max=40), torch.export.Dim("w", min=2, max=40)
    shapes = ({0: torch.export.Dim("batch", min=1, max=8), 2: 32 * h, 3: 32 * w},)
    program = torch.export.export(ours, (torch.rand(2, 3, 256, 256),), dynamic_shapes=shapes).module()
    for shape in [(1, 3, 320, 192), (3, 3, 128, 416)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
        expected = yolo_reference.output(reference, x)
        with torch.no_grad():
            got = program(x)
        assert got.shape == expected.shape and relative_error(got, expected) <= TOLERANCE


@pytest.mark.parametrize("name", ["yolov8l", "yolo11l"])
def test_deep_scales_match(name: str, tmp_path: Path) -> None:
    """The l scales' structure (YOLOv8: 3 and 6 bottlenecks per C2f; YOLO11: C3k units in every C3k2, two PSA
    blocks), which the n scale does not have, at the n scale's width (both sides) and 128 px."""
    reference, ours = build_ours(name, tmp_path, 128, width=0.25)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert relative_error(ours(x), yolo_reference.output(reference, x)) <= TOLERANCE
