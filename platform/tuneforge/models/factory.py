"""Base models: build a tiny random-init model from a config, or load a local Hugging Face one.

Nothing here downloads: ``name_or_path`` must be a local directory (``HF_HUB_OFFLINE`` is honoured
by transformers), remote code runs only when the config says so, and weights load from safetensors
only unless ``model.allow_pickle`` is set (``check_weight_files``).

Config overrides (``model.dropout``, ``model.rope_scaling``) are applied in ``load_model``, the one
path every worker takes for tiny and real bases alike: the base directory stays the unmodified base
model, and the trained checkpoints carry the overridden config (so they reload as trained).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from tuneforge.config import ConfigError, ModelConfig, TinyModelConfig
from tuneforge.config.schema import RopeScalingConfig
from tuneforge.models.precision import resolve_dtype

_log = logging.getLogger(__name__)

PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth")
"""Weight files written with ``torch.save`` (pickle): loading one can run arbitrary code."""

# Dropout probabilities ``model.dropout`` sets, where a config has them. Llama has only
# ``attention_dropout`` (its MLP and residual paths have no dropout); the others cover
# Mistral/Qwen (attention_dropout), GPT-2/GPT-J (resid/embd/attn_pdrop), BERT-like and OPT configs.
DROPOUT_FIELDS = (
    "attention_dropout",
    "hidden_dropout",
    "dropout",
    "activation_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


def tiny_llama_config(
    cfg: TinyModelConfig,
    vocab_size: int,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> LlamaConfig:
    """The Llama config of ``model.tiny`` (untied head): what the tiny model is built from and planned by."""
    return LlamaConfig(
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


def build_tiny_model(
    cfg: TinyModelConfig,
    vocab_size: int,
    seed: int,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> LlamaForCausalLM:
    """A random-init Llama built from a config, seeded so every worker and every test agrees."""
    config = tiny_llama_config(cfg, vocab_size, pad_token_id, eos_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def apply_dropout(config: Any, p: float) -> list[str]:
    """Set every known dropout field the config has to ``p``; return the fields set.

    A config with none of them would silently train without the requested regularisation, so
    that is an error.
    """
    fields = [name for name in DROPOUT_FIELDS if hasattr(config, name)]
    if not fields:
        raise ValueError(f"model.dropout: {type(config).__name__} has none of the fields {DROPOUT_FIELDS}")
    for name in fields:
        setattr(config, name, p)
    return fields


def apply_rope_scaling(config: Any, scaling: RopeScalingConfig) -> None:
    """Extend the context window: write transformers-5 ``rope_parameters`` and the new length.

    ``factor`` is relative to the base's ``max_position_embeddings`` L. ``linear`` and ``yarn`` make
    the model's length L x factor (yarn also records L as ``original_max_position_embeddings``, which
    its frequency bands need); ``dynamic`` keeps L, the length past which it rescales the RoPE base.
    Applying the same scaling twice (a checkpoint trained with it) is a no-op; a base that already
    uses another scaling is an error, since stacking them has no defined meaning.
    """
    current = dict(getattr(config, "rope_parameters", None) or {})
    if not current:
        raise ValueError(f"model.rope_scaling: {type(config).__name__} has no RoPE parameters to scale")
    rope_type = current.get("rope_type", current.get("type", "default"))
    if rope_type == scaling.type and float(current.get("factor", 0)) == scaling.factor:
        return
    if rope_type != "default":
        raise ValueError(
            f"model.rope_scaling: the base model already uses RoPE scaling '{rope_type}' "
            f"(factor {current.get('factor')}); refusing to stack '{scaling.type}' on it"
        )
    base_len = int(config.max_position_embeddings)
    kept = ("rope_theta", "partial_rotary_factor")
    params: dict[str, Any] = {k: v for k, v in current.items() if k in kept}
    params.update(rope_type=scaling.type, factor=scaling.factor)
    if scaling.type == "yarn":
        params["original_max_position_embeddings"] = base_len
    config.rope_parameters = params
    if scaling.type in ("linear", "yarn"):
        config.max_position_embeddings = int(base_len * scaling.factor)
    if hasattr(config, "validate_rope"):
        config.validate_rope()


def apply_overrides(config: Any, cfg: ModelConfig) -> Any:
    """Apply ``model.dropout`` and ``model.rope_scaling`` to a loaded or built model config."""
    if cfg.dropout is not None:
        apply_dropout(config, cfg.dropout)
    if cfg.rope_scaling is not None:
        apply_rope_scaling(config, cfg.rope_scaling)
    return config


def pickle_weight_files(path: str | Path) -> list[Path]:
    """Pickle-based weight files (``pytorch_model.bin``, ``*.pt``, ``*.pth``) at the top of a model dir.

    ``training_args.bin`` and other files that are not weights are not counted: only names that
    transformers would read as weights (``pytorch_model*``, ``model*``, ``adapter_model*``) or any
    ``.pt``/``.pth`` file.
    """
    folder = Path(path)
    if not folder.is_dir():
        return []
    found = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix not in PICKLE_WEIGHT_SUFFIXES:
            continue
        if f.suffix != ".bin" or f.name.startswith(("pytorch_model", "model", "adapter_model")):
            found.append(f)
    return found


def check_weight_files(path: str | Path, allow_pickle: bool, field: str = "model.name_or_path") -> None:
    """Refuse a model directory whose weights exist only as pickle files, unless ``allow_pickle``.

    Weights load from safetensors only (``use_safetensors=True``). A directory with safetensors
    weights passes even if it also has pickle files (they are never read). With only pickle files
    it is a ConfigError naming the directory and ``model.allow_pickle``; with ``allow_pickle`` it
    loads, after a logged warning.
    """
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = pickle_weight_files(folder)
    if not pickles:
        return
    names = ", ".join(f.name for f in pickles[:3]) + (" ..." if len(pickles) > 3 else "")
    if not allow_pickle:
        raise ConfigError(
            f"'{folder}' holds only pickle weight files ({names}); tuneforge loads safetensors only, "
            "because unpickling can run arbitrary code. Convert the weights to safetensors, or set "
            "model.allow_pickle: true if you trust this directory",
            field=field,
        )
    _log.warning(
        "model.allow_pickle is set: loading pickle weight files (%s) from %s; unpickling can run "
        "arbitrary code, so only do this for a directory you trust",
        names,
        folder,
    )


def safetensors_only(cfg: ModelConfig) -> bool | None:
    """``use_safetensors`` for ``from_pretrained``: True (safetensors or fail) unless pickle is allowed."""
    return None if cfg.allow_pickle else True


def load_model(path: str | Path, cfg: ModelConfig, use_gpu: bool = False) -> PreTrainedModel:
    """Load a local causal LM with the configured dtype, attention kernel, remote-code policy and overrides.

    RoPE buffers are not saved weights (they are computed from the config at construction), so
    scaling the config before ``from_pretrained`` is all it takes.
    """
    check_weight_files(path, cfg.allow_pickle)
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code)
    apply_overrides(config, cfg)
    kwargs: dict = {
        "config": config,
        "dtype": resolve_dtype(cfg.dtype, use_gpu),
        "trust_remote_code": cfg.trust_remote_code,
        "use_safetensors": safetensors_only(cfg),
    }
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
