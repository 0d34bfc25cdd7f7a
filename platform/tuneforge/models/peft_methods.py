"""peft configurations for the adapter and prompt-learning methods.

One builder per config class, so every knob of a ``method:`` section maps to exactly one peft argument
in one place (and the docs table can point here). Nothing here touches weights: ``apply_method`` in
``tuneforge.models.methods`` wraps the model with the returned config.
"""

from __future__ import annotations

from pathlib import Path

from peft import (
    IA3Config,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptEncoderReparameterizationType,
    PromptTuningConfig,
    PromptTuningInit,
)

from tuneforge.config import (
    IA3Method,
    LoraMethod,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
)

#: Methods whose trained weights are virtual tokens / prefixes: nothing to merge into the base.
PROMPT_LEARNING = frozenset({"prompt_tuning", "prefix_tuning", "p_tuning"})
#: Methods whose adapter folds into the base weights (``merge_and_unload``).
MERGEABLE = frozenset({"lora", "qlora", "ia3"})

CAUSAL_LM = "CAUSAL_LM"


def lora_config(method: LoraMethod) -> LoraConfig:
    """LoRA / DoRA (and the adapter half of QLoRA: ``QLoraMethod`` is a ``LoraMethod``)."""
    return LoraConfig(
        r=method.r,
        lora_alpha=method.alpha,
        lora_dropout=method.dropout,
        target_modules=method.target_modules,
        use_dora=method.use_dora,
        modules_to_save=method.modules_to_save or None,
        task_type=CAUSAL_LM,
    )


def ia3_config(method: IA3Method) -> IA3Config:
    """IA3 scaling vectors; feed-forward modules are scaled on their input, the others on their output."""
    return IA3Config(
        target_modules=method.target_modules,
        feedforward_modules=method.feedforward_modules,
        task_type=CAUSAL_LM,
    )


def prompt_tuning_config(method: PromptTuningMethod, tokenizer_dir: str | Path | None) -> PromptTuningConfig:
    """Soft prompt; ``random`` samples vocabulary embeddings (same scale as real tokens, unlike N(0, 1)).

    ``text`` init tokenizes ``init_text`` with the tokenizer in ``tokenizer_dir`` (a local directory:
    peft loads it by path) and starts from those tokens' embeddings, repeated/truncated to length.
    """
    if method.init == "text":
        if tokenizer_dir is None:
            raise ValueError("method.init: 'text' needs the tokenizer directory (none was given)")
        return PromptTuningConfig(
            num_virtual_tokens=method.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=method.init_text,
            tokenizer_name_or_path=str(tokenizer_dir),
            task_type=CAUSAL_LM,
        )
    return PromptTuningConfig(
        num_virtual_tokens=method.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
        task_type=CAUSAL_LM,
    )


def prefix_tuning_config(method: PrefixTuningMethod, hidden_size: int) -> PrefixTuningConfig:
    """Per-layer key/value prefixes, optionally through a projection MLP."""
    return PrefixTuningConfig(
        num_virtual_tokens=method.num_virtual_tokens,
        prefix_projection=method.prefix_projection,
        encoder_hidden_size=method.encoder_hidden_size or hidden_size,
        task_type=CAUSAL_LM,
    )


def p_tuning_config(method: PTuningMethod, hidden_size: int) -> PromptEncoderConfig:
    """Virtual tokens produced by an MLP or a bidirectional LSTM prompt encoder."""
    return PromptEncoderConfig(
        num_virtual_tokens=method.num_virtual_tokens,
        encoder_hidden_size=method.encoder_hidden_size or hidden_size,
        encoder_reparameterization_type=PromptEncoderReparameterizationType(
            method.encoder_reparameterization_type
        ),
        task_type=CAUSAL_LM,
    )


def peft_config_for(method: object, hidden_size: int, tokenizer_dir: str | Path | None) -> PeftConfig:
    """The peft config of any adapter/prompt method config (``full``/``freeze`` have none)."""
    if isinstance(method, LoraMethod):
        return lora_config(method)
    if isinstance(method, IA3Method):
        return ia3_config(method)
    if isinstance(method, PromptTuningMethod):
        return prompt_tuning_config(method, tokenizer_dir)
    if isinstance(method, PrefixTuningMethod):
        return prefix_tuning_config(method, hidden_size)
    if isinstance(method, PTuningMethod):
        return p_tuning_config(method, hidden_size)
    raise ValueError(f"method {getattr(method, 'name', method)!r} is not a peft method")
