"""Tuning methods: decide which weights change.

``full`` trains everything; ``lora`` wraps the model with a peft adapter. Later methods (freeze,
prompt/prefix tuning, IA3, QLoRA) plug in here through the same ``apply_method`` entry point.
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from tuneforge.config import FullMethod, LoraMethod


def apply_method(model: PreTrainedModel, method: FullMethod | LoraMethod) -> nn.Module:
    """Return the module to train, with ``requires_grad`` set as the method implies."""
    if isinstance(method, FullMethod):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if isinstance(method, LoraMethod):
        lora = LoraConfig(
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=method.target_modules,
            use_dora=method.use_dora,
            modules_to_save=method.modules_to_save or None,
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)
    raise ValueError(f"unsupported method {method!r}")


def is_adapter(model: nn.Module) -> bool:
    """True when only adapter weights are saved (the base stays where it was)."""
    return isinstance(model, PeftModel)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; under ZeRO-3 use ``ds_numel`` for partitioned tensors."""
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", p.numel())
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
