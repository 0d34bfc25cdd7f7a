"""Tuning methods: decide which weights change.

``apply_method(model, method)`` is the single entry point the workers call, before
``deepspeed.initialize`` (the optimizer and ZeRO partitions are built over what has ``requires_grad``
at that moment). Method families:

* ``full`` / ``freeze``: the HF model itself, all or some weights trainable; saved as full weights;
* ``lora`` (DoRA), ``qlora``, ``ia3``: peft adapters that can be merged into the base;
* ``prompt_tuning``, ``prefix_tuning``, ``p_tuning``: peft prompt learning; nothing to merge, the
  forward prepends virtual tokens (prompt/P-tuning) or per-layer key/value prefixes.

Exact trainable counts per method are in ``tuneforge.models.param_counts``.
"""

from __future__ import annotations

from pathlib import Path

from peft import PeftConfig, PeftModel, PromptLearningConfig, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from tuneforge.config import ConfigError, FreezeMethod, FullMethod, MethodConfig, QLoraMethod
from tuneforge.models.freeze import apply_freeze
from tuneforge.models.param_counts import expected_trainable_params
from tuneforge.models.peft_methods import MERGEABLE, PROMPT_LEARNING, lora_config, peft_config_for

QLORA_NEEDS_CUDA = "qlora needs a CUDA GPU (bitsandbytes 4-bit); this machine has none"


class MethodUnavailableError(ConfigError):
    """The configured method cannot run on this machine; raised before any model work."""


def check_method_available(method: MethodConfig, use_gpu: bool | None = None) -> None:
    """Fail fast, with one line naming the field, for methods that cannot run (QLoRA without CUDA).

    On the driver pass ``use_gpu=job.distributed.use_gpu``: a CPU job is refused before any work, a GPU
    job is left to its workers (the driver itself may have no GPU). With ``use_gpu=None`` (what
    ``apply_method`` does, first thing on each worker) this machine is probed.
    """
    if not isinstance(method, QLoraMethod):
        return
    if use_gpu is False:
        raise MethodUnavailableError(
            "qlora needs a CUDA GPU (bitsandbytes 4-bit); this job has distributed.use_gpu: false",
            field="method.name",
        )
    if use_gpu:
        return
    import torch

    if not torch.cuda.is_available():
        raise MethodUnavailableError(QLORA_NEEDS_CUDA, field="method.name")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MethodUnavailableError(
            "qlora needs the bitsandbytes package (pip install 'tuneforge[gpu]')", field="method.name"
        ) from None


def apply_method(
    model: PreTrainedModel, method: MethodConfig, tokenizer_dir: str | Path | None = None
) -> nn.Module:
    """Return the module to train, with ``requires_grad`` set as the method implies.

    ``tokenizer_dir`` is only read by prompt tuning with ``init: text``; it defaults to the directory
    the model was loaded from.
    """
    check_method_available(method)
    if isinstance(method, FullMethod):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if isinstance(method, FreezeMethod):
        return apply_freeze(model, method)
    if isinstance(method, QLoraMethod):
        return _apply_qlora(model, method)
    tok_dir = tokenizer_dir or getattr(model, "name_or_path", None) or None
    config = peft_config_for(method, int(model.config.hidden_size), tok_dir)
    return get_peft_model(model, config)


def _apply_qlora(model: PreTrainedModel, method: QLoraMethod) -> nn.Module:
    """Reload the base 4-bit quantized on this rank's GPU, then add LoRA adapters.

    Quantization happens at load time in transformers, so the full-precision model handed in is only
    used for its source directory and dtype. Not exercised on the CPU development machines.
    """
    import os

    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    source = getattr(model, "name_or_path", None)
    if not source or not Path(source, "config.json").exists():
        raise ConfigError("qlora needs a base model loaded from a local directory", field="method.name")
    dtype = model.dtype if model.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method.quant_type,
        bnb_4bit_use_double_quant=method.double_quant,
        bnb_4bit_compute_dtype=dtype,
    )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    del model
    base = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=quant, dtype=dtype, device_map={"": local_rank}
    )
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    return get_peft_model(base, lora_config(method))


def _active_config(model: PeftModel) -> PeftConfig:
    config: PeftConfig = model.peft_config[model.active_adapter]
    return config


def _peft_type(config: PeftConfig) -> str:
    """``LORA``, ``IA3``, ``PREFIX_TUNING``...: the enum's value (a config read from JSON holds a str)."""
    kind = config.peft_type
    return str(getattr(kind, "value", kind))


def is_adapter(model: nn.Module) -> bool:
    """True when only adapter weights are saved (the base stays where it was)."""
    return isinstance(model, PeftModel)


def is_prompt_learning(model: nn.Module) -> bool:
    """Prompt/prefix/P-tuning: saving runs the prompt encoder, forward adds virtual tokens."""
    return isinstance(model, PeftModel) and bool(model.peft_config[model.active_adapter].is_prompt_learning)


def num_virtual_tokens(model: nn.Module) -> int:
    """Virtual tokens a prompt-learning model prepends to the logits (0 for prefix tuning and others)."""
    if not isinstance(model, PeftModel):
        return 0
    cfg = _active_config(model)  # prompt learning <=> a PromptLearningConfig (peft's is_prompt_learning)
    if not isinstance(cfg, PromptLearningConfig) or _peft_type(cfg) == "PREFIX_TUNING":
        return 0
    return int(cfg.num_virtual_tokens)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; under ZeRO-3 use ``ds_numel`` for partitioned tensors."""
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", p.numel())
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


__all__ = [
    "MERGEABLE",
    "PROMPT_LEARNING",
    "QLORA_NEEDS_CUDA",
    "MethodUnavailableError",
    "apply_method",
    "check_method_available",
    "count_parameters",
    "expected_trainable_params",
    "is_adapter",
    "is_prompt_learning",
    "num_virtual_tokens",
]
