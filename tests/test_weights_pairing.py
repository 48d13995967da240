"""--weights can never pair silently wrong: by name (dotted and numbered layer names, weights: rename rules),
else strictly by position, with a located error naming both layers wherever position is not evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.backends.torch.weights import pair_state_dict
from archspec.cli import main
from archspec.errors import ArchspecError, SpecErrors

SPEC = Path(__file__).parent / "specs" / "projection_after_main.yaml"


class RegNetLikeReference(nn.Module):
    """The reference registers the projection before the main branch (torchvision's ResBottleneckBlock)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(4, width, 1, bias=False), nn.BatchNorm2d(width))
        self.f = nn.Sequential(nn.Conv2d(4, width, 1, bias=False), nn.BatchNorm2d(width))
        self.fc = nn.Linear(width * 64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(torch.relu(self.f(x)) + self.proj(x)), 1))


def _reference(tmp_path: Path) -> tuple[RegNetLikeReference, Path]:
    torch.manual_seed(0)
    reference = RegNetLikeReference().eval()
    with torch.no_grad():  # the two branches must differ, or a swap would go unseen
        for bn in (reference.proj[1], reference.f[1]):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.normal_()
    path = tmp_path / "regnet_like.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def test_swapped_same_shape_tensors_are_a_located_error(tmp_path: Path, capsys) -> None:
    _, weights = _reference(tmp_path)
    with pytest.raises(SpecErrors) as caught:
        archspec.build(SPEC, weights=weights)
    error = caught.value.errors[0]
    assert error.code == "AS705"
    assert error.location is not None and error.location.file.endswith("projection_after_main.yaml")
    assert "'stage.a'" in error.message and "'stage.proj'" in error.message
    out = tmp_path / "x.pt2"
    code = main(["build", str(SPEC), "--weights", str(weights), "-o", str(out)])
    assert code == 1 and not out.exists()
    assert "projection_after_main.yaml:" in capsys.readouterr().err


def test_rename_rules_pair_the_same_checkpoint_exactly(tmp_path: Path) -> None:
    reference, weights = _reference(tmp_path)
    text = SPEC.read_text().replace(
        "layers:\n  - {name: stage",
        """weights:
  rename:
    - {ours: "stage.a", ref: "f.0"}
    - {ours: "stage.a_bn", ref: "f.1"}
    - {ours: "stage.proj", ref: "proj.0"}
    - {ours: "stage.proj_bn", ref: "proj.1"}
layers:
  - {name: stage""",
        1,
    )
    spec = tmp_path / "renamed.yaml"
    spec.write_text(text)
    ours = archspec.build(spec, weights=weights).eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_strict_position_names_both_layers(tmp_path: Path) -> None:
    """A main branch longer than the projection: by position the k-th tensors differ in shape (AS704)."""
    spec = tmp_path / "longer.yaml"
    spec.write_text(
        SPEC.read_text()
        .replace(
            "      - {op: relu}\n      - {name: proj",
            "      - {op: relu}\n      - {name: a2, op: conv2d, out: $width, kernel: 3, padding: 1, bias: false}\n      - {name: proj",
        )
        .replace("from: [relu, proj_bn]", "from: [a2, proj_bn]")
    )
    torch.manual_seed(0)
    reference = nn.ModuleDict(
        {
            "proj": nn.Conv2d(4, 8, 1, bias=False),
            "proj_bn": nn.BatchNorm2d(8),
            "a": nn.Conv2d(4, 8, 1, bias=False),
            "a_bn": nn.BatchNorm2d(8),
            "a2": nn.Conv2d(8, 8, 3, bias=False),
            "fc": nn.Linear(512, 3),
        }
    )
    state = {f"x.{k}": v for k, v in reference.state_dict().items()}
    torch.save(state, tmp_path / "ref.pt")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=tmp_path / "ref.pt")
    error = caught.value.errors[0]
    assert error.code == "AS704" and error.location is not None and error.location.file == str(spec)
    assert "layer 'stage.a2' (weight [8, 8, 3, 3])" in error.message and "'x.a' (weight [8, 4, 1, 1])" in error.message


def test_unordered_checkpoint_needs_numbered_names_for_same_shaped_siblings(tmp_path: Path) -> None:
    """A .safetensors file keeps no order: two same-shaped layers named a and b come back sorted, so their
    order is no evidence and pairing them by position is AS705; numbered names (features.2, features.10)
    keep their order, and a .pt file keeps registration order."""
    from safetensors.torch import save_file

    spec = tmp_path / "chain.yaml"
    spec.write_text("""archspec: 1
name: chain
input: [4]
layers:
  - {name: first, op: linear, out: 4}
  - {name: second, op: linear, out: 4}
""")
    torch.manual_seed(0)
    reference = nn.Sequential()
    reference.add_module("zeta", nn.Linear(4, 4))
    reference.add_module("alpha", nn.Linear(4, 4))
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(state, str(tmp_path / "ref.safetensors"))
    torch.save(state, tmp_path / "ref.pt")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=tmp_path / "ref.safetensors")
    assert caught.value.errors[0].code == "AS705" and "'zeta'" in caught.value.errors[0].message
    ours = archspec.build(spec, weights=tmp_path / "ref.pt")  # registration order: first is zeta
    assert torch.equal(ours.state_dict()["first.weight"], reference.zeta.weight)


def test_name_with_another_shape_is_an_error(tmp_path: Path) -> None:
    ours = archspec.build(SPEC)
    state = dict(ours.state_dict())
    state["fc.weight"] = torch.zeros(3, 7)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(SPEC, weights=tmp_path / "bad.pt")
    assert caught.value.errors[0].code == "AS706" and "'fc.weight'" in caught.value.errors[0].message


def test_cli_counts_and_convert_weights_round_trip(tmp_path: Path, capsys) -> None:
    """A one-block-per-stage ResNet: torchvision's checkpoint pairs all by name (numbered downsample.0/1);
    convert-weights writes it under our names, and that file loads by name too, to the same tensors."""
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    reference = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    spec = Path(__file__).resolve().parents[1] / "specs" / "resnet18.yaml"
    converted = tmp_path / "r18.safetensors"
    assert (
        main(
            [
                "convert-weights",
                str(spec),
                str(tmp_path / "r18.pth"),
                "-o",
                str(converted),
                "--set",
                "num_classes=10",
                "--set",
                "depths=[1, 1, 1, 1]",
            ]
        )
        == 0
    )
    assert f"{len(reference.state_dict())} paired by name, 0 by position" in capsys.readouterr().out
    from safetensors.torch import load_file

    saved = load_file(str(converted))
    assert "layer2.0.downsample.0.weight" in saved
    assert torch.equal(saved["layer2.0.downsample.1.running_var"], reference.layer2[0].downsample[1].running_var)
    ours = archspec.build(spec, weights=converted, num_classes=10, resolution=64, depths=[1, 1, 1, 1]).state_dict()
    assert all(torch.equal(ours[k], v) for k, v in reference.state_dict().items())  # torchvision's names are ours


def test_cli_says_how_tensors_paired(tmp_path: Path, capsys) -> None:
    _, weights = _reference(tmp_path)
    spec = tmp_path / "half.yaml"  # the branches named by rules, the head (ours: head, theirs: fc) by position
    spec.write_text(
        SPEC.read_text()
        .replace("{name: fc, op: linear", "{name: head, op: linear")
        .replace(
            "layers:\n  - {name: stage",
            """weights:
  rename:
    - {ours: "stage.a", ref: "f.0"}
    - {ours: "stage.a_bn", ref: "f.1"}
    - {ours: "stage.proj", ref: "proj.0"}
    - {ours: "stage.proj_bn", ref: "proj.1"}
layers:
  - {name: stage""",
            1,
        )
    )
    assert main(["build", str(spec), "--weights", str(weights), "-o", str(tmp_path / "half.pt2")]) == 0
    out = capsys.readouterr().out
    assert "14 tensors from" in out and "12 paired by name, 2 by position" in out


def test_by_position_false_refuses_unnamed_tensors(tmp_path: Path) -> None:
    spec = tmp_path / "strict.yaml"
    spec.write_text(
        SPEC.read_text().replace(
            "layers:\n  - {name: stage", "weights: {by_position: false}\nlayers:\n  - {name: stage", 1
        )
    )
    _, weights = _reference(tmp_path)
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=weights)
    assert caught.value.errors[0].code == "AS707"


def test_path_patterns() -> None:
    from archspec.paths import PatternError, glob_matches, parse_rename

    assert glob_matches("**.bn3", "bn3") and glob_matches("**.bn3", "layer1.0.bn3")
    assert glob_matches("layer*.*.bn3", "layer4.2.bn3") and not glob_matches("layer*.bn3", "layer4.2.bn3")
    assert not glob_matches("*" * 50 + "b", "a" * 100)  # linear wildcard matching, no blow-up
    dense = parse_rename("features.denseblock{b}.{i}", "features.denseblock{b}.denselayer{i + 1}")
    assert dense.apply("features.denseblock2.9.conv1.weight") == "features.denseblock2.denselayer10.conv1.weight"
    assert dense.apply("features.norm5.weight") is None
    anywhere = parse_rename("**.downsample.conv", "**.downsample.0")
    assert anywhere.apply("layer2.0.downsample.conv.weight") == "layer2.0.downsample.0.weight"
    for ours, ref in [("a.{x}{y}", "b"), ("a", "{z}"), ("a", "**.b"), ("a.{i}", "b{i"), ("**", "b")]:
        with pytest.raises(PatternError):
            parse_rename(ours, ref)


# -- buffers the spec computes itself ----------------------------------------------------------------
BUFFERS = Path(__file__).parent / "specs" / "computed_buffers.yaml"


class BufferedReference(nn.Module):
    """Keeps the spec's index and table as buffers, an index table the spec does not have between them and
    the weights, and its linear under another name (so it pairs by position, after the extra table)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("index", torch.tensor([3, 2, 1, 0]))
        self.register_buffer("lookup_index", torch.tensor([0, 0, 1]))
        self.register_buffer("table", torch.tensor([[0.5, 1.0, 2.0]]))
        self.dense = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x[:, self.index] * self.table)


def test_computed_buffers_are_compared_and_extra_tables_skipped(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    reference = BufferedReference().eval()
    path = tmp_path / "ref.pth"
    torch.save(reference.state_dict(), path)
    assert main(["build", str(BUFFERS), "--weights", str(path), "-o", str(tmp_path / "b.pt2")]) == 0
    report = capsys.readouterr().out
    assert "2 tensors from" in report and "0 paired by name, 2 by position" in report, report
    assert "2 buffer(s) the spec computes match the checkpoint's" in report
    assert "skipped 1 checkpoint buffer(s) the spec computes itself or does not use ('lookup_index')" in report
    ours = archspec.build(BUFFERS, weights=path).eval()
    x = torch.randn(3, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_a_different_computed_buffer_is_a_located_error(tmp_path: Path) -> None:
    state = BufferedReference().state_dict()
    state["table"] = torch.tensor([[0.5, 1.0, 3.0]])
    torch.save(state, tmp_path / "ref.pth")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(BUFFERS, weights=tmp_path / "ref.pth")
    error = caught.value.errors[0]
    assert error.code == "AS708" and "'table'" in error.message
    assert (
        error.location is not None
        and error.location.file.endswith("computed_buffers.yaml")
        and error.location.line == 6
    )


def test_an_integer_tensor_never_loads_into_a_weight(tmp_path: Path, write_spec) -> None:
    # An integer tensor named like one of the spec's weights: located there ...
    torch.save({"fc.weight": torch.ones(2, 3, dtype=torch.int64), "fc.bias": torch.zeros(2)}, tmp_path / "ref.pth")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(BUFFERS, weights=tmp_path / "ref.pth")
    assert caught.value.errors[0].code == "AS709" and caught.value.errors[0].location.line == 8
    # ... also where the spec's tensor is at its layer's own path (a learned table) ...
    spec = write_spec(
        "archspec: 1\nname: t\ninput: [3]\nlayers:\n"
        "  - {name: position_index, op: parameter, shape: [3], from: input}\n"
        "  - {op: add, from: [position_index, input]}\n"
    )
    torch.save({"position_index": torch.arange(3)}, tmp_path / "ref.pth")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=tmp_path / "ref.pth")
    assert caught.value.errors[0].code == "AS709" and caught.value.errors[0].location.line == 5
    # ... and one that pairs with nothing is skipped only if it is an index table (a name ending in index).
    state = {**BufferedReference().state_dict(), "counts": torch.arange(3)}
    torch.save(state, tmp_path / "ref.pth")
    with pytest.raises(ArchspecError, match="AS701.*'counts'"):
        archspec.build(BUFFERS, weights=tmp_path / "ref.pth")


# -- tensors the reference stores transposed (Hugging Face GPT-2's Conv1D: weight [in, out]) -----------
CONV1D_SPEC = """archspec: 1
name: conv1d_like
input: [5, 4]
weights:
  rename:
    - {ours: "**.square.weight", ref: "transposed(**.square.weight)"}
    - {ours: "**.wide.weight", ref: "transposed(**.wide.weight)"}
    - {ours: "**.narrow.weight", ref: "transposed(**.narrow.weight)"}
layers:
  - {name: block.square, op: linear, out: 4}
  - {name: block.wide, op: linear, out: 6}
  - {name: block.narrow, op: linear, out: 4}
"""


class Conv1D(nn.Module):
    """transformers' GPT-2 Conv1D: y = x @ weight + bias, weight [in, out]."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out))
        self.bias = nn.Parameter(torch.randn(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class Conv1DReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Module()
        self.block.square, self.block.wide, self.block.narrow = Conv1D(4, 4), Conv1D(4, 6), Conv1D(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.narrow(self.block.wide(self.block.square(x)))


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_transposed_rules_pair_conv1d_weights_by_name(tmp_path: Path, write_spec, suffix: str) -> None:
    """The square weight too is transposed: the checkpoint's layout decides, not the square's shape (our own
    name is in the checkpoint, with the right shape, and is not taken as it is)."""
    torch.manual_seed(0)
    reference = Conv1DReference().eval()
    path = _save(reference.state_dict(), tmp_path / f"ref{suffix}")
    spec = write_spec(CONV1D_SPEC)
    ours = archspec.build(spec, weights=path).eval()
    assert torch.equal(ours.state_dict()["block.square.weight"], reference.block.square.weight.t())
    graph = archspec.compile_spec(spec).graph
    pairing = pair_state_dict(ours.state_dict(), reference.state_dict(), graph)
    assert (pairing.by_name, pairing.transposed) == (
        6,
        3,
    ) and "6 paired by name (3 stored transposed)" in pairing.summary("x")
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
    # a checkpoint in our own layout (convert-weights, a built module's state dict) loads as it is, square included
    assert pair_state_dict(ours.state_dict(), ours.state_dict(), graph).transposed == 0
    again = archspec.build(spec, weights=_save(ours.state_dict(), tmp_path / f"ours{suffix}")).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), ours(x), rtol=0, atol=0)
    # without its rule the square weight pairs by its own name, untransposed: what the rule is there to prevent
    plain = write_spec(
        CONV1D_SPEC.replace('ref: "transposed(**.square.weight)"', 'ref: "**.square.weight"'), "plain.yaml"
    )
    wrong = archspec.build(plain, weights=path).eval()
    with torch.no_grad():
        assert not torch.allclose(wrong(x), reference(x))


def test_a_transposed_rule_checks_shapes_and_one_layout(tmp_path: Path, write_spec) -> None:
    spec = write_spec(CONV1D_SPEC)
    state = dict(Conv1DReference().state_dict())
    state["block.narrow.weight"] = torch.randn(5, 4)  # neither layout: checked transposed, as the wide one shows
    torch.save(state, tmp_path / "ref.pth")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=tmp_path / "ref.pth")
    error = caught.value.errors[0]
    assert error.code == "AS706" and "'block.narrow.weight' (stored transposed) is [4, 5]" in error.message
    assert error.location is not None and error.location.line == 12  # block.narrow
    state["block.narrow.weight"] = torch.randn(4, 6)  # our layout beside the wide one's transposed: two layouts
    torch.save(state, tmp_path / "ref.pth")
    with pytest.raises(SpecErrors) as caught:
        archspec.build(spec, weights=tmp_path / "ref.pth")
    assert caught.value.errors[0].code == "AS706" and "mixes two layouts" in caught.value.errors[0].message


def test_transposed_rule_patterns() -> None:
    from archspec.paths import PatternError, parse_rename, renamed_as

    rule = parse_rename("**.c_attn.weight", "transposed(**.c_attn.weight)")
    assert renamed_as("transformer.h.3.attn.c_attn.weight", [rule]) == ("transformer.h.3.attn.c_attn.weight", True)
    assert renamed_as("transformer.h.3.attn.c_attn.bias", [rule]) == ("transformer.h.3.attn.c_attn.bias", False)
    prefix = parse_rename("**.c_attn", "transposed(**.c_attn)")  # a whole tensor only, never a prefix
    assert prefix.apply("h.0.c_attn.weight") is None and prefix.apply("h.0.c_attn") == "h.0.c_attn"
    for ref in ("transposed()", "transposed(a(b))", "a(b)", "transposed(a"):
        with pytest.raises(PatternError):
            parse_rename("a.weight", ref)
