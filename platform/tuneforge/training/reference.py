"""A frozen copy of the base as the DPO/IPO/KTO reference model (``method.reference: model``).

Why a third way beside ``adapter_disabled`` and ``precomputed``: full fine-tuning has no adapter to
switch off, and precomputing scores every pair once up front, which a job whose pairs do not all fit
a Ray Data pass of the base model (or whose data changes between runs, so the cache never hits)
does not want. The copy is wrapped in its own DeepSpeed engine without an optimizer, as TRL's
``prepare_deepspeed`` does for its reference model: under ZeRO-3 its weights are partitioned over
the ranks like the policy's (each rank holds 1/world of them and a forward gathers them layer by
layer), under stages 0-2 every rank holds it whole (stage 0: nothing to shard without an optimizer).
"""

from __future__ import annotations

from typing import Any

import torch

from tuneforge.config import DistributedConfig, TrainerConfig
from tuneforge.training.ds_config import build_ds_config


class ReferenceModel:
    """No-grad forwards of the frozen base: the reference log-probs of a preference batch."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen base's logits for ``input_ids`` (every rank must call it: ZeRO-3 gathers)."""
        out = self.engine(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.logits  # type: ignore[no-any-return]


def setup_reference(
    model: torch.nn.Module,
    trainer: TrainerConfig,
    dist: DistributedConfig,
    world_size: int,
    dtype: torch.dtype,
    autocast: torch.dtype | None = None,
) -> ReferenceModel:
    """Freeze ``model`` (a second load of the base) and wrap it for inference beside the policy.

    ``autocast`` as the policy's: both sides of a preference log-ratio computed alike.
    """
    import deepspeed

    model.requires_grad_(False)
    model.eval()
    config = build_ds_config(trainer, dist, world_size, dtype, autocast)
    zero: dict[str, Any] = {"stage": 3 if dist.zero_stage == 3 else 0}
    if dist.zero_stage == 3 and dist.offload_params:
        zero["offload_param"] = config["zero_optimization"]["offload_param"]
    config["zero_optimization"] = zero
    config.pop("gradient_clipping", None)
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return ReferenceModel(engine)
