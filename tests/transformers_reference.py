"""The GPT-2, BERT and Llama references: Hugging Face transformers' own classes, built from configs.

Nothing is downloaded: each row's config is the published `config.json` of its checkpoint, written out
here field by field (the architecture's fields only: ids of special tokens, dropout and dtype change no
tensor). `build` makes the reference model with seeded random weights (transformers' own initialisation
under `torch.manual_seed`, then every 1-D tensor moved off its constant start, so that norm scales and
biases that start at 1 or 0 cannot hide a tensor paired with the wrong one); `state_dict` gives its
tensors under the checkpoint's names (`transformer.h.0.attn.c_attn.weight`, GPT-2's Conv1D layout
[in, out]); `output` the network's output for token ids; `count_params` the parameter count of the full
size, made on the meta device (no memory: the 8B row has 8 billion parameters).

The models are:
    GPT-2     GPT2LMHeadModel (logits; the LM head is tied to the token embedding)
    BERT      BertModel(add_pooling_layer=False) (the last hidden state; token type 0, no padding mask)
    Llama     LlamaForCausalLM (logits; Llama 3's rope scaling, grouped-query attention)
each with the eager attention implementation (the plain softmax(QK^T)V, as written in the paper).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# name -> (family, the published config.json's architecture fields). GPT-2's sizes are GPT2Config's
# defaults (gpt2) and the fields of gpt2-medium/-large/-xl's config.json; BERT's bert-base-uncased and
# bert-large-uncased; Llama's meta-llama/Llama-3.2-1B and meta-llama/Llama-3.1-8B.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt2": ("gpt2", {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": 50257}),
    "gpt2_medium": ("gpt2", {"n_layer": 24, "n_head": 16, "n_embd": 1024, "n_positions": 1024, "vocab_size": 50257}),
    "gpt2_large": ("gpt2", {"n_layer": 36, "n_head": 20, "n_embd": 1280, "n_positions": 1024, "vocab_size": 50257}),
    "gpt2_xl": ("gpt2", {"n_layer": 48, "n_head": 25, "n_embd": 1600, "n_positions": 1024, "vocab_size": 50257}),
    "bert_base_uncased": (
        "bert",
        {
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
        },
    ),
    "bert_large_uncased": (
        "bert",
        {
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
        },
    ),
    "llama3_2_1b": (
        "llama",
        {
            "hidden_size": 2048,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "intermediate_size": 8192,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "tie_word_embeddings": True,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "rope_scaling": {
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
        },
    ),
    "llama3_1_8b": (
        "llama",
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
        },
    ),
}

# Parameter counts of the full-size rows, as `count_params` measures them with transformers 5.25 (tied
# tensors counted once: GPT-2's LM head, Llama 3.2 1B's). tests/test_fidelity_transformers.py measures
# them again and compares; the thin specs state them in expect:.
PARAMS = {
    "gpt2": 124_439_808,
    "gpt2_medium": 354_823_168,
    "gpt2_large": 774_030_080,
    "gpt2_xl": 1_557_611_200,
    "bert_base_uncased": 108_891_648,
    "bert_large_uncased": 334_092_288,
    "llama3_2_1b": 1_235_814_400,
    "llama3_1_8b": 8_030_261_248,
}


def available() -> str | None:
    """None when transformers can be imported, else why not (a skip reason)."""
    try:
        import transformers  # noqa: F401
    except Exception as exc:
        return f"transformers is not importable ({type(exc).__name__}: {exc}); pip install -e '.[dev]'"
    return None


def family(name: str) -> str:
    return ROWS[name][0]


def config(name: str, **changes: Any) -> Any:
    """The transformers config of row `name`, with `changes` to its config.json fields (`n_layer=2`,
    `rope_scaling=None` for Llama without frequency scaling)."""
    import transformers

    kind, fields = ROWS[name]
    fields = {**fields, **changes}
    if kind == "gpt2":
        made = transformers.GPT2Config(**fields)
    elif kind == "bert":
        made = transformers.BertConfig(**fields)
    else:
        # transformers 5 keeps config.json's rope_theta and rope_scaling together as rope_parameters.
        rope = {
            "rope_type": "default",
            **(fields.pop("rope_scaling", None) or {}),
            "rope_theta": fields.pop("rope_theta"),
        }
        made = transformers.LlamaConfig(**fields, rope_parameters=rope)
    made._attn_implementation = "eager"
    return made


def _model(kind: str, made: Any) -> nn.Module:
    import transformers

    if kind == "gpt2":
        return transformers.GPT2LMHeadModel(made)
    if kind == "bert":
        return transformers.BertModel(made, add_pooling_layer=False)
    return transformers.LlamaForCausalLM(made)


def build(name: str, seed: int = 0, **changes: Any) -> nn.Module:
    """Row `name` (with config changes) in eval mode, with seeded random weights."""
    torch.manual_seed(seed)
    model = _model(family(name), config(name, **changes))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # norm scales (1), biases (0): make each tensor distinct
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def count_params(name: str, **changes: Any) -> int:
    """Parameters of row `name` built on the meta device (shapes only, nothing allocated), tied tensors
    counted once, as `sum(p.numel() for p in model.parameters())` counts them."""
    with torch.device("meta"):
        model = _model(family(name), config(name, **changes))
    return sum(p.numel() for p in model.parameters())


def figures(name: str, seq_len: int, **changes: Any) -> dict[str, Any]:
    """The row's reference figures at `seq_len` tokens, made on the meta device: parameters (as
    `count_params`), MACs (torch.utils.flop_counter.FlopCounterMode's total / 2 of one sample's forward:
    with the eager attention, the score and weighted-value products are matmuls it counts), and the
    input and output shapes of one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _model(family(name), config(name, **changes)).eval()
    ids = torch.zeros(1, seq_len, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = output(model, ids)
    return {
        "family": family(name),
        "input": [seq_len],
        "params": sum(p.numel() for p in model.parameters()),
        "macs": counter.get_total_flops() // 2,
        "output": list(out.shape[1:]),
    }


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors under the checkpoint's names. GPT-2's tied LM head appears as `lm_head.weight` beside
    `transformer.wte.weight` (one tensor, as transformers' state_dict gives it)."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def output(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits [N, T, vocab] (GPT-2, Llama) or the last hidden state [N, T, hidden] (BERT) for token ids [N, T]."""
    with torch.no_grad():
        out = model(input_ids=ids)
    return out.last_hidden_state if family_of(model) == "bert" else out.logits


def family_of(model: nn.Module) -> str:
    return {"GPT2LMHeadModel": "gpt2", "BertModel": "bert", "LlamaForCausalLM": "llama"}[type(model).__name__]
