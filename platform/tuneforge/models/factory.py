"""Base models: build a tiny random-init model from a config, or load a local Hugging Face one.

Nothing here downloads: ``name_or_path`` must be a local directory (``HF_HUB_OFFLINE`` is honoured
by transformers), and remote code runs only when the config says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from tuneforge.config import ModelConfig, TinyModelConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, use_gpu: bool) -> torch.dtype:
    """``auto`` means bf16 on GPU and fp32 on CPU (CPU kernels for half precision are slow and lossy)."""
    if name == "auto":
        return torch.bfloat16 if use_gpu else torch.float32
    return _DTYPES[name]


def build_tiny_model(
    cfg: TinyModelConfig,
    vocab_size: int,
    seed: int,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> LlamaForCausalLM:
    """A random-init Llama built from a config, seeded so every worker and every test agrees."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads or cfg.num_attention_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def load_model(path: str | Path, cfg: ModelConfig, use_gpu: bool = False) -> PreTrainedModel:
    """Load a local causal LM with the configured dtype, attention kernel and remote-code policy."""
    kwargs: dict = {"dtype": resolve_dtype(cfg.dtype, use_gpu), "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
