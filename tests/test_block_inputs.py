"""Blocks with several named inputs (`inputs: [x, skip]`, bound in order to the using layer's `from:`): the
graph they lower to, the built module against the same computation written by hand, and the located errors
(AS440 wrong number of inputs, AS441 a name clash, AS442 an input nobody reads)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.cli import main

DECODER = """archspec: 1
name: t
input: [3, 16, 16]
blocks:
  up:
    params: {out: 4}
    inputs: [x, skip]
    layers:
      - {name: up, op: upsample, scale: 2}
      - {name: cat, op: concat, from: [skip, up]}
      - {name: conv, op: conv2d, out: $out, kernel: 3, padding: 1}
  plain:
    layers:
      - {name: act, op: relu}
layers:
  - {name: stem, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: down, op: maxpool2d, kernel: 2}
  - {name: mid, op: plain}
  - {name: dec, op: up, from: [mid, stem], out: 5}
"""


def test_inputs_bind_in_order_and_input_still_works(write_spec) -> None:
    # dec.up has no from:, so it reads the first input (x <- mid); dec.cat reads skip (<- stem) by name.
    path = write_spec(DECODER)
    graph = archspec.compile_spec(path).graph
    assert [(n.name, n.inputs, n.shape) for n in graph.ops] == [
        ("stem", ("input",), (4, 16, 16)),
        ("down", ("stem",), (4, 8, 8)),
        ("mid.act", ("down",), (4, 8, 8)),
        ("dec.up", ("mid.act",), (4, 16, 16)),
        ("dec.cat", ("stem", "dec.up"), (8, 16, 16)),
        ("dec.conv", ("dec.cat",), (5, 16, 16)),
    ]
    model = archspec.build(path).eval()
    x = torch.randn(2, 3, 16, 16)
    stem = model.stem(x)
    up = F.interpolate(F.relu(F.max_pool2d(stem, 2)), scale_factor=2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.dec.conv(torch.cat([stem, up], 1)), rtol=0, atol=0)


@pytest.mark.parametrize(
    "change, line, code, message",
    [
        (("from: [mid, stem]", "from: mid"), 19, "AS440", "block 'up' takes 2 inputs (x, skip); from: gives 1"),
        (
            ("from: [mid, stem]", "from: [mid, stem, down]"),
            19,
            "AS440",
            "from: gives 3. List them in from: in that order",
        ),
        (
            ("{name: mid, op: plain}", "{name: mid, op: plain, from: [down, stem]}"),
            18,
            "AS402",
            "block 'plain' takes one input; from: gives 2. A block that merges several takes them by name: declare inputs:",
        ),
        (("inputs: [x, skip]", "inputs: [x, skip, x]"), 7, "AS441", "lists input 'x' twice"),
        (
            ("inputs: [x, skip]", "inputs: [x, skip, cat]"),
            10,
            "AS441",
            "layer 'cat' of block 'up' has the name of one of",
        ),
        (
            ("inputs: [x, skip]", "inputs: [x, skip, bias]"),
            7,
            "AS442",
            "declares input 'bias', which none of its layers reads",
        ),
        (("inputs: [x, skip]", "inputs: [x, 'not ok']"), 7, "AS409", "input 'not ok'"),
    ],
)
def test_block_input_errors_are_located(
    write_spec, capsys, change: tuple[str, str], line: int, code: str, message: str
) -> None:
    path = write_spec(DECODER.replace(*change))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err and f": {code}: " in err and message in err and "Traceback" not in err, err


def test_a_mistyped_from_is_named_beside_the_input_it_leaves_unread(write_spec, capsys) -> None:
    """dec.up's from: is the only reader of x; mistyped, it leaves x unread (AS442, found by validation)
    and names nothing (AS401, which only lowering can tell): both are reported, the typo at its own line.
    Found by the invalid-spec property (mutation bad_from), where validation stopped at AS442."""
    path = write_spec(
        DECODER.replace("{name: up, op: upsample, scale: 2}", "{name: up, op: upsample, scale: 2, from: dec.x}")
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:7:" in err and ": AS442: " in err and "declares input 'x'" in err, err
    assert f"{path}:9:" in err and ": AS401: from: 'dec.x' is not an earlier layer" in err, err


def test_repeat_of_a_two_input_block_says_why(write_spec, capsys) -> None:
    path = write_spec(DECODER.replace("from: [mid, stem], out: 5", "from: [mid, stem], out: 4, repeat: 2"))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:19:" in err and "AS440" in err and "a repeat: copy after the first gets 1" in err, err


def test_the_docs_decoder_level_compiles(write_spec) -> None:
    """The U-Net decoder level of docs/spec-format.md, verbatim, under a small encoder written here."""
    import yaml

    from reference import ROOT

    docs = (ROOT / "docs/spec-format.md").read_text()
    start = docs.index("```yaml\nblocks:\n  up:\n    inputs: [x, skip]")
    example = yaml.safe_load(docs[start + len("```yaml\n") : docs.index("```", start + 3)])
    blocks = {
        **example["blocks"],
        "double_conv": {
            "params": {"out": {"type": "int"}},
            "layers": [{"op": "conv2d", "out": "$out", "kernel": 3, "padding": 1}, {"op": "relu"}],
        },
    }
    layers = [
        {"name": "down2", "op": "conv2d", "out": 256, "kernel": 1},
        {"name": "down3", "op": "conv2d", "out": 512, "kernel": 2, "stride": 2},
        {"name": "down4", "op": "conv2d", "out": 1024, "kernel": 2, "stride": 2},
        *example["layers"],
    ]
    spec = {"archspec": 1, "name": "t", "input": [3, 8, 8], "blocks": blocks, "layers": layers}
    graph = archspec.compile_spec(write_spec(yaml.safe_dump(spec, sort_keys=False))).graph
    assert graph.node("up1.cat").inputs == ("down3", "up1.up") and graph.node("up2.cat").inputs == ("down2", "up2.up")
    assert graph.node("up2.up").shape == (256, 8, 8) and graph.node(graph.output).shape == (256, 8, 8)
