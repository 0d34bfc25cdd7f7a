"""Early stopping on an evaluation metric with patience.

The decision is a pure function of the sequence of evaluated values. The loop feeds it the eval loss,
which is all-reduced (float64 sums, identical bits on every rank), so every rank takes the same
decision at the same step without an extra collective: no rank can leave the loop while another
still waits in a forward pass or a report barrier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuneforge.config.schema import EarlyStoppingConfig


@dataclass
class EarlyStopper:
    """Tracks the best value (lower is better) and how many evaluations in a row failed to improve it.

    The evaluation before training counts as the first value: a run whose eval loss never drops
    below the starting point stops after ``patience`` evaluations. An evaluation improves only if it
    beats the best by more than ``min_delta``; NaN never improves.
    """

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    bad_evals: int = 0
    stopped: bool = field(default=False, init=False)

    @classmethod
    def from_config(cls, cfg: EarlyStoppingConfig | None) -> EarlyStopper | None:
        return None if cfg is None else cls(patience=cfg.patience, min_delta=cfg.min_delta)

    def update(self, value: float) -> bool:
        """Record one evaluation; True when training should stop now."""
        if value < self.best - self.min_delta:
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        self.stopped = self.bad_evals >= self.patience
        return self.stopped
