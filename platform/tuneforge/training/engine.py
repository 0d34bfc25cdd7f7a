"""DeepSpeed engine set-up: optimizer, learning-rate schedule and ``deepspeed.initialize``.

Under Ray Train the process group already exists (gloo on CPU, nccl on GPU); DeepSpeed wraps it,
so there is no launcher and no ``init_distributed`` call here.
"""

from __future__ import annotations

import math
import os
import random
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.optim.lr_scheduler import LRScheduler
from transformers import get_scheduler

from tuneforge.config import DistributedConfig, TrainerConfig
from tuneforge.training.ds_config import build_ds_config

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


class TrainingEngine(Protocol):
    """The part of DeepSpeed's ``DeepSpeedEngine`` that training uses (deepspeed ships no type hints).

    ``setup_engine`` returns one; the loop, checkpoints and universal-checkpoint loading take one.
    """

    #: The wrapped model: a transformers model (full, freeze) or a peft model (adapters, prompt learning).
    module: PreTrainedModel | PeftModel
    #: DeepSpeed's (ZeRO) optimizer wrapper: untyped, like the rest of deepspeed.
    optimizer: Any
    lr_scheduler: LRScheduler | None
    #: DeepSpeed's ``DeepSpeedConfig`` (untyped).
    _config: Any

    def __call__(self, **inputs: torch.Tensor | bool) -> Any:
        """The wrapped model's forward pass (a transformers ``ModelOutput`` with ``.loss``)."""

    def backward(self, loss: torch.Tensor) -> object: ...

    def step(self) -> None: ...

    def is_gradient_accumulation_boundary(self) -> bool: ...

    def get_lr(self) -> list[float]: ...

    def train(self, mode: bool = True) -> object: ...

    def eval(self) -> object: ...

    def zero_optimization_stage(self) -> int: ...

    def compile(self) -> None:
        """``torch.compile`` the wrapped module (``trainer.compile``); the first forward compiles."""

    def save_checkpoint(
        self,
        save_dir: str,
        tag: str | None = None,
        client_state: dict[str, Any] | None = None,
        save_latest: bool = True,
        exclude_frozen_parameters: bool = False,
    ) -> object: ...

    def load_checkpoint(
        self,
        load_dir: str,
        tag: str | None = None,
        load_module_strict: bool = True,
        load_optimizer_states: bool = True,
        load_lr_scheduler_states: bool = True,
    ) -> tuple[str | None, dict[str, Any] | None]: ...


def configure_accelerator(use_gpu: bool, extensions_dir: str | None) -> None:
    """Pin DeepSpeed's accelerator and op-build cache *before* deepspeed is imported.

    Compiled ops use ``-march=native``; the cache lives in the job's own (ignored) folder.
    """
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if extensions_dir:
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir)


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over trainable params; no decay on biases and norm weights (the usual LLM recipe).

    Decaying a norm's gain or a bias pulls it towards 0, which changes what the layer computes rather
    than regularising it; 1-D tensors are exactly those. Embeddings and projections decay.
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every RNG a training step can draw from (Python, NumPy, torch on all devices).

    All ranks use the same seed: anything created after seeding (adapter init, dropout streams)
    must agree across ranks, and different data per rank already decorrelates the dropout masks.
    ``deterministic`` also pins the kernels; on CPU the default kernels already are deterministic,
    on GPU bit-identical reruns need it (and cuBLAS's workspace setting, set here).
    """
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch's dependencies here
        pass
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def warmup_steps_for(trainer: TrainerConfig, total_steps: int) -> int:
    """``warmup_ratio`` of the run (rounded up, so a non-zero ratio always warms up) or ``warmup_steps``."""
    if trainer.warmup_ratio is not None:
        return math.ceil(trainer.warmup_ratio * total_steps)
    return trainer.warmup_steps


def build_scheduler(
    optimizer: torch.optim.Optimizer, trainer: TrainerConfig, total_steps: int
) -> LRScheduler:
    """The per-optimizer-step LR multiplier: linear warmup from 0, then the configured shape.

    transformers' schedules are used as they are (``constant`` has no warmup, which the config
    rejects; ``linear``/``cosine`` reach 0 at ``total_steps``). The same function drives the
    DeepSpeed engine and the plain-PyTorch reference in the tests, so they agree by construction.
    """
    scheduler: LRScheduler = get_scheduler(
        trainer.lr_scheduler,
        optimizer,
        num_warmup_steps=warmup_steps_for(trainer, total_steps),
        num_training_steps=max(total_steps, 1),
    )
    return scheduler


def setup_engine(
    model: torch.nn.Module,
    trainer: TrainerConfig,
    dist: DistributedConfig,
    world_size: int,
    total_steps: int,
    dtype: torch.dtype,
    autocast: torch.dtype | None = None,
) -> TrainingEngine:
    """Wrap ``model`` in a DeepSpeed engine configured from the job's trainer and distributed sections.

    ``autocast`` (``models.precision.autocast_dtype``) runs the forward under ``torch.autocast``
    through DeepSpeed's ``torch_autocast``, so evaluation through the engine is autocast alike.
    """
    import deepspeed

    optimizer = build_optimizer(model, trainer.lr, trainer.weight_decay)
    scheduler = build_scheduler(optimizer, trainer, total_steps)
    engine: TrainingEngine
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=build_ds_config(trainer, dist, world_size, dtype, autocast),
    )
    return engine
