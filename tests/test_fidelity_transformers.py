"""GPT-2, BERT and Llama 3 against Hugging Face transformers (tests/transformers_reference.py).

- Every row's parameter count and MACs equal the reference's, measured on the meta device (the 8B row
  too: nothing is allocated), and tests/reference_models.json holds those figures for the thin specs.
- Outputs: the reference's random weights, saved as a state dict, build our spec through `--weights`
  (`archspec.build(spec, weights=path, ...)`: GPT-2's Conv1D weights pair transposed, its tied LM head
  as one tensor) and give the reference's outputs within a relative error of 1e-5, at small depths (one or
  two layers of each row's own width; the larger rows with a 1,024-token vocabulary, which only the
  embedding and the head see), Llama with and without Llama 3's rope scaling.
- The 8B spec's `archspec summary` takes under 3 s of wall time and allocates nothing (the peak RSS of the
  whole process, Python included, stays under 200 MiB; the weights would be 32 GB). Linux only (/proc).

Figures measured here (2 shared CPU cores, torch 2.14.1, transformers 5.25) are in the README.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

import archspec
from reference import REFERENCE, SPECS, TOLERANCE, relative_error
import transformers_reference as hf

pytestmark = pytest.mark.skipif(hf.available() is not None, reason=hf.available() or "")

# row -> the thin spec whose family holds it
SPEC = {
    "gpt2": "gpt2",
    "gpt2_medium": "gpt2",
    "gpt2_large": "gpt2",
    "gpt2_xl": "gpt2",
    "bert_base_uncased": "bert_base_uncased",
    "bert_large_uncased": "bert_base_uncased",
    "llama3_2_1b": "llama3_2_1b",
    "llama3_1_8b": "llama3_1_8b",
}
SEQ_LEN = {"gpt2": 1024, "bert": 512, "llama": 2048}  # the families' default seq_len
SMALL_VOCAB = {"vocab_size": 1024}

# (row, config changes: config.json fields, which are also our --set keys, tokens). Each row at its own
# width; one or two layers; the full vocabulary where it is cheap (GPT-2's tied head, BERT base).
CASES: list[tuple[str, dict[str, Any], int]] = [
    ("gpt2", {"n_layer": 2}, 32),
    ("gpt2_medium", {"n_layer": 1, **SMALL_VOCAB}, 16),
    ("gpt2_large", {"n_layer": 1, **SMALL_VOCAB}, 16),
    ("gpt2_xl", {"n_layer": 1, **SMALL_VOCAB}, 16),  # 25 heads of 64
    ("bert_base_uncased", {"num_hidden_layers": 2}, 32),
    ("bert_large_uncased", {"num_hidden_layers": 1, **SMALL_VOCAB}, 16),
    ("llama3_2_1b", {"num_hidden_layers": 2, **SMALL_VOCAB}, 64),  # rope scaling factor 32, tied head
    # Llama 3.1 8B: head_dim 128, untied head; its MLP narrowed (14,336 wide it would hold 176M weights)
    ("llama3_1_8b", {"num_hidden_layers": 1, "intermediate_size": 1024, **SMALL_VOCAB}, 64),
]


def ours_of(changes: dict[str, Any]) -> dict[str, Any]:
    """Config changes as our --set values: the same names, but Llama's rope_scaling mapping is flattened."""
    out = {k: v for k, v in changes.items() if k != "rope_scaling"}
    if "rope_scaling" in changes:
        assert changes["rope_scaling"] is None
        out["rope_scaling_factor"] = 1.0
    return out


def compare(row: str, changes: dict[str, Any], tokens: int, tmp_path: Path) -> tuple[float, torch.Tensor]:
    """Our spec built from the reference's saved weights; the relative error of its output on random ids."""
    reference = hf.build(row, **changes)
    weights = tmp_path / f"{row}.pt"
    torch.save(hf.state_dict(reference), weights)
    ours = archspec.build(
        SPECS / f"{SPEC[row]}.yaml", variant=row, weights=weights, seq_len=tokens, **ours_of(changes)
    ).eval()
    vocab = changes.get("vocab_size", hf.ROWS[row][1]["vocab_size"])
    ids = torch.randint(0, vocab, (2, tokens), generator=torch.Generator().manual_seed(1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few small products per layer: one thread is as fast, and fair to a shared machine
    try:
        with torch.no_grad():
            got, expected = ours(ids), hf.output(reference, ids)
    finally:
        torch.set_num_threads(threads)
    assert got.shape == expected.shape
    return relative_error(got, expected), expected


@pytest.mark.parametrize("row", list(hf.ROWS))
def test_parameter_counts_and_macs_equal_the_reference(row: str) -> None:
    seq_len = SEQ_LEN[hf.family(row)]
    figures = hf.figures(row, seq_len)  # on the meta device: the 8B row allocates nothing
    assert figures["params"] == hf.PARAMS[row]
    costs = archspec.summary(SPECS / f"{SPEC[row]}.yaml", variant=row)
    assert (costs.params, costs.macs, list(costs.input), list(costs.output), costs.input_dtype) == (
        figures["params"],
        figures["macs"],
        figures["input"],
        figures["output"],
        "int64",
    )
    if row in REFERENCE:  # the thin specs' rows of tests/reference_models.json are these figures
        assert REFERENCE[row] == figures
    print(f"{row}: {costs.params:,} parameters, {costs.macs:,} MACs at {seq_len} tokens")


def test_gpt2_has_the_published_size() -> None:
    assert archspec.summary(SPECS / "gpt2.yaml").params == 124_439_808 == hf.count_params("gpt2")


@pytest.mark.parametrize("row, changes, tokens", [pytest.param(*case, id=case[0]) for case in CASES])
def test_outputs_equal_the_reference_through_weights(
    row: str, changes: dict[str, Any], tokens: int, tmp_path: Path
) -> None:
    error, _ = compare(row, changes, tokens, tmp_path)
    print(f"{row} {changes}: relative error {error:.3g}")
    assert error <= TOLERANCE


def test_llama_without_rope_scaling_and_the_scaling_shows(tmp_path: Path) -> None:
    """rope_scaling_factor 1.0 is the plain rotary embedding (rope_scaling: null); the two differ by far more
    than the tolerance at 64 tokens, so both comparisons check the scaling."""
    changes = {"num_hidden_layers": 2, **SMALL_VOCAB}
    error, plain = compare("llama3_2_1b", {**changes, "rope_scaling": None}, 64, tmp_path)
    print(f"llama3_2_1b without rope scaling: relative error {error:.3g}")
    assert error <= TOLERANCE
    scaled = hf.output(
        hf.build("llama3_2_1b", **changes), torch.randint(0, 1024, (2, 64), generator=torch.Generator().manual_seed(1))
    )
    assert relative_error(scaled, plain) > 100 * TOLERANCE


def test_summary_of_the_8b_spec_is_fast_and_allocates_nothing() -> None:
    """The whole command as a user runs it, Python's start included; torch is never imported."""
    # The peak RSS is VmHWM of this process's memory (getrusage's ru_maxrss would include pytest's, whose fork it is).
    script = (
        "import re, sys, time\n"
        "start = time.perf_counter()\n"
        "from archspec.cli import main\n"
        "code = main(['summary', sys.argv[1], '--json'])\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "print(code, time.perf_counter() - start, peak, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    walls = []
    for _ in range(2):  # the better of two runs: the machine is shared, and one run may wait for a core
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", script, str(SPECS / "llama3_1_8b.yaml")], capture_output=True, text=True, timeout=60
        )
        walls.append(time.perf_counter() - start)
        if walls[-1] < 3.0:
            break
    wall = min(walls)
    code, inside, peak_kb, torch_imported = result.stderr.split()[-4:]
    summary = json.loads(result.stdout)
    print(
        f"llama3_1_8b summary: {wall:.2f} s wall ({float(inside):.2f} s after Python's start), peak RSS "
        f"{int(peak_kb) / 1024:.0f} MiB"
    )
    assert code == "0" and summary["params"] == 8_030_261_248 and torch_imported == "False"
    assert wall < 3.0
    assert int(peak_kb) < 200 * 1024
