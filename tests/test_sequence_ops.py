"""Token inputs and the ops language models need (archspec/ops/sequence.py, attention's causal and grouped-query
forms, linear's tie:): shapes, counts, located errors, the torch and torch-source backends (bit-identical), and
Hugging Face transformers' own functions as the oracle where it is installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import sys

from hypothesis import given, settings, strategies as st
import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecErrors
from archspec.pipeline import compile_spec
from archspec.registry import default_registry
from archspec.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
DECODER = ROOT / "tests/specs/decoder_block.yaml"


def codes(spec: Path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    return [f"{e.code}@{e.location.line if e.location else None}" for e in info.value.errors]


def load_source(spec: Path, tmp_path: Path, **overrides) -> nn.Module:
    """The torch-source file of `spec`, imported, and its class instantiated."""
    out = archspec.build_file(spec, tmp_path / "model.py", backend="torch-source", overrides=overrides or None)
    name = f"generated_{abs(hash(str(out)))}"
    module_spec = importlib.util.spec_from_file_location(name, out)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    classes = [
        v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == name
    ]
    return classes[-1]()


def same_in_both(spec: Path, tmp_path: Path, x: torch.Tensor, **overrides) -> torch.Tensor:
    """The torch module's output, checked to equal the torch-source file's bit for bit (same state dict)."""
    model = archspec.build(spec, **overrides).eval()
    source = load_source(spec, tmp_path, **overrides).eval()
    source.load_state_dict(model.state_dict())
    with torch.no_grad():
        ours, theirs = model(x), source(x)
    assert torch.equal(ours, theirs)
    return ours


# -- token inputs ---------------------------------------------------------------------------------------------
TOKENS = """
archspec: 1
name: tokens
params: {seq_len: 12, vocab: 40, dim: 16}
input: {shape: [$seq_len], dtype: int64}
layers:
  - {name: wte, op: embedding, num: $vocab, dim: $dim}
  - {name: ln, op: layernorm}
  - {name: head, op: linear, out: $vocab}
"""


def test_token_input_is_counted_summarised_and_typed(write_spec):
    compiled = compile_spec(write_spec(TOKENS))
    assert compiled.graph.input.dtype == "int64" and compiled.graph.input.shape == (12,)
    costs = compiled.costs
    assert costs.input_dtype == "int64" and costs.to_json()["input_dtype"] == "int64"
    assert costs.params == 40 * 16 + 2 * 16 + 16 * 40 + 40
    assert [layer.macs for layer in costs.layers] == [0, 0, 12 * 16 * 40]  # an embedding lookup is 0 MACs
    assert costs.output == (12, 40)
    from archspec.report import table

    assert "input [12] int64 -> output [12, 40]" in table(costs)


def test_plain_list_input_stays_float(write_spec):
    spec = write_spec("archspec: 1\nname: f\ninput: [4]\nlayers:\n  - {op: linear, out: 2}\n")
    assert compile_spec(spec).graph.input.dtype == "float32"
    spec = write_spec("archspec: 1\nname: f\ninput: {shape: [4]}\nlayers:\n  - {op: linear, out: 2}\n")
    assert compile_spec(spec).costs.input_dtype == "float32"


def test_schema_knows_the_input_form():
    schema = json_schema(default_registry())
    model = schema["$defs"]["Input"]
    assert model["properties"]["dtype"]["enum"] == ["float32", "int64"] and "shape" in model["required"]
    assert "sequence" in schema["$defs"]["Dynamic"]["properties"]
    assert "embedding" in json.dumps(schema) and "rope" in json.dumps(schema)


def test_int_input_into_float_op_is_located(write_spec):
    spec = write_spec(
        "archspec: 1\nname: bad\ninput: {shape: [8], dtype: int64}\nlayers:\n  - {name: fc, op: linear, out: 4}\n"
    )
    assert codes(spec) == ["AS504@5"]
    spec = write_spec(
        "archspec: 1\nname: bad\ninput: {shape: [8], dtype: int64}\nlayers:\n"
        "  - {name: shaped, op: reshape, shape: [2, 4]}\n"  # shape-only ops pass ids on
        "  - {name: back, op: flatten}\n"
        "  - {name: act, op: relu}\n"
    )
    assert codes(spec) == ["AS504@7"]
    spec = write_spec("archspec: 1\nname: bad\ninput: [8]\nlayers:\n  - {op: embedding, num: 4, dim: 2}\n")
    assert codes(spec) == ["AS504@5"]  # an embedding needs ids


def test_shape_only_ops_carry_ids_to_the_embedding(write_spec, tmp_path):
    spec = write_spec(
        "archspec: 1\nname: moved\ninput: {shape: [8], dtype: int64}\nlayers:\n"
        "  - {op: slice, axis: 0, start: 2}\n  - {op: reshape, shape: [2, 3]}\n"
        "  - {name: wte, op: embedding, num: 10, dim: 4}\n"
    )
    out = same_in_both(spec, tmp_path, torch.randint(0, 10, (3, 8)))
    assert out.shape == (3, 2, 3, 4)


def test_wrong_dtype_at_call_time_is_a_clear_error(write_spec, tmp_path):
    spec = write_spec(TOKENS)
    for model in (archspec.build(spec), load_source(spec, tmp_path)):
        with pytest.raises(TypeError, match="takes integer token ids"):
            model(torch.randn(2, 12))
        assert model(torch.randint(0, 40, (2, 12))).shape == (2, 12, 40)
    float_spec = ROOT / "tests/specs/residual.yaml"
    for model in (archspec.build(float_spec), load_source(float_spec, tmp_path)):
        with pytest.raises(TypeError, match="takes floating-point input"):
            model(torch.zeros(1, 3, 16, 16, dtype=torch.int64))


# -- embedding, norms ---------------------------------------------------------------------------------------
def test_embedding_matches_nn_embedding_with_padding(write_spec, tmp_path):
    spec = write_spec(
        "archspec: 1\nname: e\ninput: {shape: [6], dtype: int64}\nlayers:\n"
        "  - {name: wte, op: embedding, num: 9, dim: 5, padding_idx: 0}\n"
    )
    model = archspec.build(spec)
    assert isinstance(model.wte, nn.Embedding) and model.wte.padding_idx == 0
    assert torch.equal(model.wte.weight[0], torch.zeros(5))
    x = torch.tensor([[0, 1, 2, 8, 8, 0]])
    assert torch.equal(same_in_both(spec, tmp_path, x), model.wte.weight[x].detach())
    bad = write_spec(
        "archspec: 1\nname: e\ninput: {shape: [6], dtype: int64}\nlayers:\n"
        "  - {op: embedding, num: 9, dim: 5, padding_idx: 9}\n"
    )
    assert codes(bad) == ["AS403@5"]


@settings(max_examples=15, deadline=None)
@given(width=st.integers(1, 24), eps=st.sampled_from([1e-6, 1e-5]), rows=st.integers(1, 5))
def test_rmsnorm_is_hugging_face_llama_rms_norm(width, eps, rows):
    transformers = pytest.importorskip("transformers")
    from archspec.backends.torch.sequence import RMSNorm

    ref = transformers.models.llama.modeling_llama.LlamaRMSNorm(width, eps=eps)
    ours = RMSNorm(width, eps)
    with torch.no_grad():
        ref.weight.normal_()
        ours.weight.copy_(ref.weight)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(rows, 3, width).to(dtype)
        assert torch.equal(ours.to(dtype)(x), ref.to(dtype)(x))


def test_norm_counts_and_outputs(write_spec, tmp_path):
    spec = write_spec(
        "archspec: 1\nname: norms\ninput: [8, 5, 5]\nlayers:\n"
        "  - {name: gn, op: groupnorm, groups: 4, eps: 1.0e-6}\n"
        "  - {name: flat, op: flatten}\n  - {name: rms, op: rmsnorm, affine: false}\n"
    )
    costs = compile_spec(spec).costs
    assert [layer.params for layer in costs.layers] == [16, 0, 0] and costs.macs == 0
    x = torch.randn(2, 8, 5, 5)
    reference = nn.GroupNorm(4, 8, eps=1e-6)(x).flatten(1)
    reference = reference * torch.rsqrt(reference.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(same_in_both(spec, tmp_path, x), reference)
    bad = write_spec("archspec: 1\nname: norms\ninput: [6, 2, 2]\nlayers:\n  - {op: groupnorm, groups: 4}\n")
    assert codes(bad) == ["AS501@5"]


# -- rotary position embedding -----------------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    half=st.integers(1, 16), theta=st.sampled_from([10000.0, 500000.0]), tokens=st.integers(1, 40), scaled=st.booleans()
)
def test_rope_is_hugging_face_apply_rotary_pos_emb(half, theta, tokens, scaled):
    """Bit for bit transformers' LlamaRotaryEmbedding (Llama 3 scaling or none) and apply_rotary_pos_emb."""
    transformers = pytest.importorskip("transformers")
    llama = transformers.models.llama.modeling_llama
    from archspec.backends.torch.sequence import Rotary

    dim, heads = 2 * half, 2
    scaling = (
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        }
        if scaled
        else None
    )
    config = transformers.LlamaConfig(
        hidden_size=dim * heads,
        num_attention_heads=heads,
        rope_theta=theta,
        rope_scaling=scaling,
        max_position_embeddings=64,
    )
    reference = llama.LlamaRotaryEmbedding(config)
    ours = Rotary(dim, theta, *((8.0, 1.0, 4.0, 16) if scaled else ()))
    q = torch.randn(2, heads, tokens, dim)
    cos, sin = reference(q, torch.arange(tokens)[None].expand(2, -1))
    expected, _ = llama.apply_rotary_pos_emb(q, q, cos, sin)
    assert torch.equal(ours(q), expected)


def test_rope_arguments_and_shapes(write_spec):
    bad = write_spec("archspec: 1\nname: r\ninput: [4, 7]\nlayers:\n  - {op: rope}\n")
    assert codes(bad) == ["AS501@5"]  # odd width
    bad = write_spec(
        "archspec: 1\nname: r\ninput: [4, 8]\nlayers:\n  - {op: rope, factor: 8.0, low_freq_factor: 4.0}\n"
    )
    assert codes(bad) == ["AS403@5"]  # high_freq_factor must be above low_freq_factor
    assert compile_spec(write_spec("archspec: 1\nname: r\ninput: [3, 4, 8]\nlayers:\n  - {op: rope}\n")).costs.macs == 0


# -- attention: causal, grouped-query -------------------------------------------------------------------------
GQA = """
archspec: 1
name: gqa
input: [3, 6, 8]
layers:
  - {name: q, op: identity}
  - {name: kv, op: slice, axis: 0, stop: 1, from: input}
  - {name: attend, op: attention, causal: true, from: [q, kv, kv]}
"""


def test_grouped_query_causal_attention_is_sdpa(write_spec, tmp_path):
    spec = write_spec(GQA.replace("[3, 6, 8]", "[4, 6, 8]").replace("stop: 1", "stop: 2"))
    costs = compile_spec(spec).costs
    assert costs.output == (4, 6, 8) and costs.macs == 2 * 4 * 6 * 6 * 8  # scores and values, every query head
    x = torch.randn(2, 4, 6, 8)
    kv = x[:, :2]
    expected = torch.nn.functional.scaled_dot_product_attention(
        x, kv.repeat_interleave(2, 1), kv.repeat_interleave(2, 1), is_causal=True
    )
    torch.testing.assert_close(same_in_both(spec, tmp_path, x), expected)
    transformers = pytest.importorskip("transformers")
    repeated = transformers.models.llama.modeling_llama.repeat_kv(kv, 2)
    assert torch.equal(repeated, kv.repeat_interleave(2, dim=1))  # HF's repeat_kv: the layout the op uses


def test_causal_needs_square_scores_and_groups_must_divide(write_spec):
    spec = write_spec(
        GQA.replace(
            "{name: kv, op: slice, axis: 0, stop: 1, from: input}",
            "{name: kv, op: slice, axis: 1, stop: 4, from: input}",
        )
    )
    assert codes(spec) == ["AS501@8"]  # 6 queries, 4 keys
    spec = write_spec(GQA.replace("stop: 1", "stop: 2"))  # 3 query heads, 2 kv heads
    assert codes(spec) == ["AS501@8"]


def test_causal_self_attention_ignores_later_tokens(write_spec, tmp_path):
    spec = write_spec(
        "archspec: 1\nname: c\ninput: [5, 8]\nlayers:\n  - {name: attn, op: self_attention, heads: 2, causal: true}\n"
    )
    x = torch.randn(1, 5, 8)
    changed = x.clone()
    changed[:, -1] += 1.0
    a, b = same_in_both(spec, tmp_path, x), same_in_both(spec, tmp_path, changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])
    model = archspec.build(spec).eval()
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    expected = nn.MultiheadAttention.forward(model.attn, x, x, x, attn_mask=mask, need_weights=False)[0]
    torch.testing.assert_close(model(x), expected)


def test_masks_may_hold_minus_infinity(write_spec, tmp_path):
    spec = write_spec(
        "archspec: 1\nname: m\nparams: {T: 4}\ninput: [1, $T, 8]\nlayers:\n"
        "  - {name: mask, op: constant, shape: [1, $T, $T], from: input,\n"
        "     values: \"${[[[0.0 if j <= i else '-inf' for j in range(T)] for i in range(T)]]}\"}\n"
        "  - {name: attend, op: attention, from: [input, input, input, mask]}\n"
    )
    x = torch.randn(2, 1, 4, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True)
    torch.testing.assert_close(same_in_both(spec, tmp_path, x), expected)


# -- weight tying -------------------------------------------------------------------------------------------
def test_tied_head_is_one_tensor_counted_once(write_spec, tmp_path):
    spec = write_spec(
        TOKENS.replace("{name: head, op: linear, out: $vocab}", "{name: head, op: linear, out: $vocab, tie: wte}")
    )
    costs = compile_spec(spec).costs
    assert costs.params == 40 * 16 + 2 * 16 + 40 and costs.layers[-1].macs == 12 * 16 * 40
    model = archspec.build(spec)
    assert list(model.state_dict()) == ["wte.weight", "ln.weight", "ln.bias", "head.bias"]
    assert sum(p.numel() for p in model.parameters()) == costs.params
    x = torch.randint(0, 40, (2, 12))
    out = same_in_both(spec, tmp_path, x)
    hidden = model.ln(model.wte(x))
    torch.testing.assert_close(out, hidden @ model.wte.weight.T + model.head.bias)
    loss = model(x).sum()
    loss.backward()  # the one tensor gets the gradient of both uses
    assert model.wte.weight.grad is not None


def test_tie_errors_are_located(write_spec):
    for tie, line in (("nowhere", 9), ("ln", 9), ("wte.bias", 9)):
        spec = write_spec(
            TOKENS.replace(
                "{name: head, op: linear, out: $vocab}", f"{{name: head, op: linear, out: $vocab, tie: {tie}}}"
            )
        )
        assert codes(spec) == [f"AS443@{line}"], tie  # unknown layer, wrong shape (ln.weight is [16]), no such tensor


# -- the worked example: a decoder block ----------------------------------------------------------------------
def test_decoder_block_builds_runs_and_matches_torch_source(tmp_path):
    costs = compile_spec(DECODER).costs
    assert costs.input_dtype == "int64" and costs.output == (16, 64)
    model = archspec.build(DECODER)
    assert "lm_head.weight" not in model.state_dict()  # tied to embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == costs.params
    for tokens in (1, 5, 16):
        out = same_in_both(DECODER, tmp_path, torch.randint(0, 64, (2, tokens)))
        assert out.shape == (2, tokens, 64)
    x = torch.randint(0, 64, (1, 16))
    changed = x.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 64
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :-1], model(changed)[:, :-1])  # causal: the past ignores the future
        # --optimize rebuilds on the meta device: rope's frequencies (outside the state dict) come along
        assert torch.equal(archspec.build(DECODER, optimize=True)(x), model.eval()(x))


def test_decoder_exports_take_any_length_in_the_sequence_range(tmp_path):
    path = archspec.build_file(DECODER, tmp_path / "decoder.pt2")
    program = torch.export.load(str(path)).module()
    model = archspec.build(DECODER).eval()
    with torch.no_grad():
        for tokens in (1, 7, 64):
            x = torch.randint(0, 64, (3, tokens))
            assert torch.equal(program(x), model(x))
    pytest.importorskip("onnxruntime")
    import onnxruntime

    path = archspec.build_file(DECODER, tmp_path / "decoder.onnx", backend="onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (declared,) = session.get_inputs()
    assert declared.type == "tensor(int64)" and declared.shape == ["batch", "sequence"]
    for tokens in (2, 33):
        x = torch.randint(0, 64, (2, tokens))
        (got,) = session.run(None, {declared.name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


def test_sequence_range_must_fit_the_input(write_spec):
    from archspec.errors import ArchspecError

    spec = write_spec(TOKENS + "dynamic: {sequence: [16, 32]}\n")  # the spec's own length is 12
    with pytest.raises(ArchspecError, match="AS808|must include"):
        archspec.build_file(spec, spec.with_suffix(".pt2"))
