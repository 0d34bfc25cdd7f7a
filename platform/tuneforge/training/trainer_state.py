"""Where training stands, as written into every checkpoint (``tuneforge/trainer_state.json``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "tuneforge/trainer_state.json"


@dataclass
class TrainerState:
    """Where training stands: enough to resume at the same step and data position."""

    step: int
    epoch: int
    batches_in_epoch: int  # global micro-batches of ``epoch`` consumed (all ranks together)
    config_hash: str
    world_size: int = 1
    grad_accum: int = 1
    eval_loss: float = math.nan  # the latest evaluation at or before ``step``
    eval_loss_before: float = math.nan
    train_tokens: float = 0.0
    resumable: bool = False  # holds DeepSpeed + RNG state (``tuneforge/ds``)

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> TrainerState:
        return cls(**json.loads((Path(ckpt_dir) / STATE_FILE).read_text()))
