"""DeepSpeed configuration built from the job spec.

One function owns the mapping so every stage/offload combination is produced (and tested) the
same way. The optimizer is *not* named here: a client ``torch.optim.AdamW`` is passed to
``deepspeed.initialize`` instead, which avoids compiling FusedAdam/CPUAdam C++ ops on CPU machines.
"""

from __future__ import annotations

from typing import Any

import torch

from tuneforge.config import DistributedConfig, TrainerConfig


def build_ds_config(
    trainer: TrainerConfig,
    dist: DistributedConfig,
    world_size: int,
    dtype: torch.dtype,
    autocast: torch.dtype | None = None,
) -> dict[str, Any]:
    """The ds_config dict for ``deepspeed.initialize``.

    ``dtype`` is the weights' (bf16/fp16: DeepSpeed's half-precision modes, fp32 master weights in
    the optimizer); ``autocast`` a compute dtype for DeepSpeed's ``torch_autocast`` (fp32 weights,
    low-precision matmuls: ``model.dtype: bf16-mixed``, models/precision.py).
    """
    if dist.zero_stage_auto or trainer.micro_batch_size_auto:  # a placeholder must never train silently
        raise ValueError(
            "distributed.zero_stage / trainer.micro_batch_size 'auto' must be resolved by the memory planner "
            "before training (distributed.preflight.check_memory_fits; `tuneforge train` does it)"
        )
    zero: dict[str, Any] = {"stage": dist.zero_stage}
    if dist.zero_stage >= 1:
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if dist.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": dist.use_gpu}
    if dist.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": dist.use_gpu}
    if dist.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": trainer.micro_batch_size,
        "gradient_accumulation_steps": trainer.grad_accum,
        "train_batch_size": trainer.micro_batch_size * trainer.grad_accum * world_size,
        "gradient_clipping": trainer.grad_clip or 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == torch.bfloat16},
        "fp16": {"enabled": dtype == torch.float16},
        "torch_autocast": {
            "enabled": autocast is not None,
            "dtype": str(autocast or torch.bfloat16).removeprefix("torch."),
        },
        # A client optimizer under ZeRO/offload: allowed explicitly, no DeepSpeedCPUAdam forced.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
