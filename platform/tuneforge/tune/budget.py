"""Token budget for a sweep: stop it once all trials together have trained on N tokens.

Each trial reports ``train_tokens`` (cumulative over its ranks) at every evaluation; the stopper keeps
the latest value per trial, so the sum is what the sweep has spent so far, and ``stop_all`` ends the
sweep (running trials stop at their next report, pending ones never start).
"""

from __future__ import annotations

from typing import Any

from ray.tune.stopper import Stopper


class TokenBudgetStopper(Stopper):
    """``stop_all`` once the summed ``train_tokens`` of every trial reaches ``max_total_tokens``."""

    def __init__(self, max_total_tokens: int) -> None:
        if max_total_tokens < 1:
            raise ValueError(f"max_total_tokens must be >= 1, got {max_total_tokens}")
        self.max_total_tokens = max_total_tokens
        self.spent: dict[str, float] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        tokens = result.get("train_tokens")
        if tokens is not None:
            self.spent[trial_id] = max(self.spent.get(trial_id, 0.0), float(tokens))
        return False

    @property
    def total(self) -> float:
        return sum(self.spent.values())

    def stop_all(self) -> bool:
        return self.total >= self.max_total_tokens


__all__ = ["TokenBudgetStopper"]
