"""DeepSpeed engine set-up: optimizer, learning-rate schedule and ``deepspeed.initialize``.

Under Ray Train the process group already exists (gloo on CPU, nccl on GPU); DeepSpeed wraps it,
so there is no launcher and no ``init_distributed`` call here.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import get_scheduler

from tuneforge.config import JobConfig
from tuneforge.training.ds_config import build_ds_config


def configure_accelerator(use_gpu: bool, extensions_dir: str | None) -> None:
    """Pin DeepSpeed's accelerator and op-build cache *before* deepspeed is imported.

    Compiled ops use ``-march=native``; the cache lives in the job's own (ignored) folder.
    """
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if extensions_dir:
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir)


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over trainable params; no decay on biases and norms (the usual LLM recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def setup_engine(
    model: torch.nn.Module, job: JobConfig, world_size: int, total_steps: int, dtype: torch.dtype
) -> Any:
    """Wrap ``model`` in a DeepSpeed engine configured from the job spec."""
    import deepspeed

    t = job.trainer
    optimizer = build_optimizer(model, t.lr, t.weight_decay)
    scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=max(total_steps, 1)
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=build_ds_config(t, job.distributed, world_size, dtype),
    )
    return engine
