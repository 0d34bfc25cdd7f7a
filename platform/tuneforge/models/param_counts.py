"""Trainable-parameter counts computed from the architecture alone (no model is built).

Tests assert these *exactly* against ``count_parameters`` of the real, wrapped model, so a peft upgrade
that changes what a method trains, or a freeze rule that selects the wrong weights, fails loudly. The
docs table of per-method costs is generated from the same function. Llama-family layout only
(``q/k/v/o_proj``, ``gate/up/down_proj``, two RMSNorms per block), which covers the tiny model and
Llama/Mistral/Qwen2-style checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.config import (
    FreezeMethod,
    FullMethod,
    IA3Method,
    LoraMethod,
    MethodConfig,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
)
from tuneforge.models.freeze import select_trainable

if TYPE_CHECKING:
    from transformers import PretrainedConfig

Shape = tuple[int, ...]


def _dims(cfg: PretrainedConfig) -> tuple[int, int, int, int, int, int]:
    """(hidden, intermediate, layers, heads, kv_heads, head_dim) of a HF config."""
    hidden, heads = int(cfg.hidden_size), int(cfg.num_attention_heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    return hidden, int(cfg.intermediate_size), int(cfg.num_hidden_layers), heads, kv, head_dim


def linear_shapes(cfg: PretrainedConfig) -> dict[str, tuple[int, int]]:
    """Per-block linear modules as ``suffix -> (in_features, out_features)``."""
    hidden, inter, _, heads, kv, hd = _dims(cfg)
    return {
        "self_attn.q_proj": (hidden, heads * hd),
        "self_attn.k_proj": (hidden, kv * hd),
        "self_attn.v_proj": (hidden, kv * hd),
        "self_attn.o_proj": (heads * hd, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }


def parameter_shapes(cfg: PretrainedConfig) -> dict[str, Shape]:
    """Every parameter of a Llama-style causal LM by its HF name (tied lm_head counted once)."""
    hidden, _, layers, _, _, _ = _dims(cfg)
    vocab = int(cfg.vocab_size)
    attn_bias, mlp_bias = bool(getattr(cfg, "attention_bias", False)), bool(getattr(cfg, "mlp_bias", False))
    shapes: dict[str, Shape] = {"model.embed_tokens.weight": (vocab, hidden)}
    for i in range(layers):
        prefix = f"model.layers.{i}"
        for suffix, (fan_in, fan_out) in linear_shapes(cfg).items():
            shapes[f"{prefix}.{suffix}.weight"] = (fan_out, fan_in)
            if (attn_bias and suffix.startswith("self_attn")) or (mlp_bias and suffix.startswith("mlp")):
                shapes[f"{prefix}.{suffix}.bias"] = (fan_out,)
        shapes[f"{prefix}.input_layernorm.weight"] = (hidden,)
        shapes[f"{prefix}.post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    if not getattr(cfg, "tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    return shapes


def _numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _targets(target_modules: list[str] | str, cfg: PretrainedConfig) -> list[tuple[int, int]]:
    """(in, out) of every linear peft would wrap: exact name or ``.name`` suffix, as peft matches."""
    shapes = linear_shapes(cfg)
    layers = _dims(cfg)[2]
    if target_modules == "all-linear":  # peft: every linear except the output layer
        picked = list(shapes)
    else:
        picked = [s for s in shapes if any(f".{s}".endswith(f".{t}") for t in target_modules)]
    return [shapes[s] for s in picked] * layers


def _lstm_params(input_size: int, hidden: int, num_layers: int = 2) -> int:
    """torch.nn.LSTM(bidirectional=True): 4 gates x (W_ih, W_hh, b_ih, b_hh) per layer and direction."""
    total, size_in = 0, input_size
    for _ in range(num_layers):
        total += 2 * (4 * hidden * size_in + 4 * hidden * hidden + 8 * hidden)
        size_in = 2 * hidden
    return total


def expected_trainable_params(model_config: PretrainedConfig, method: MethodConfig) -> int:
    """Exact number of trainable parameters ``apply_method`` leaves on a model with this HF config."""
    hidden, _, layers, _, kv, hd = _dims(model_config)
    shapes = parameter_shapes(model_config)
    if isinstance(method, FullMethod):
        return sum(_numel(s) for s in shapes.values())
    if isinstance(method, FreezeMethod):
        head = ["lm_head.weight"] if "lm_head.weight" in shapes else ["model.embed_tokens.weight"]
        sel = select_trainable(shapes, layers, method, ["model.embed_tokens.weight"], head)
        return sum(_numel(shapes[n]) for n in sel.trainable)
    if isinstance(method, LoraMethod):  # also QLoRA: same adapters over a quantized base
        total = 0
        for fan_in, fan_out in _targets(method.target_modules, model_config):
            total += method.r * (fan_in + fan_out) + (fan_out if method.use_dora else 0)
        for module in method.modules_to_save:
            total += sum(_numel(s) for n, s in shapes.items() if f".{module}." in f".{n}")
        return total
    if isinstance(method, IA3Method):
        shapes_by_suffix = linear_shapes(model_config)
        total = 0
        for suffix, (fan_in, fan_out) in shapes_by_suffix.items():
            leaf = suffix.split(".")[-1]
            if leaf in method.target_modules:
                total += layers * (fan_in if leaf in method.feedforward_modules else fan_out)
        return total
    if isinstance(method, PromptTuningMethod):
        return method.num_virtual_tokens * hidden
    if isinstance(method, PrefixTuningMethod):
        kv_dim = kv * hd  # peft sizes prefixes for the key/value heads (grouped-query attention)
        out = layers * 2 * kv_dim
        if not method.prefix_projection:
            return method.num_virtual_tokens * out
        enc = method.encoder_hidden_size or hidden
        return method.num_virtual_tokens * kv_dim + (kv_dim * enc + enc) + (enc * out + out)
    if isinstance(method, PTuningMethod):
        enc = method.encoder_hidden_size or hidden
        emb = method.num_virtual_tokens * hidden
        if method.encoder_reparameterization_type == "MLP":
            return emb + (hidden * enc + enc) + (enc * enc + enc) + (enc * hidden + hidden)
        lstm_head = (2 * enc * 2 * enc + 2 * enc) + (2 * enc * hidden + hidden)
        return emb + _lstm_params(hidden, enc) + lstm_head
    raise ValueError(f"no parameter count for method {getattr(method, 'name', method)!r}")
