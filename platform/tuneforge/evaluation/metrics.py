"""Task metrics per example, computed with the field's libraries (rouge-score, sacrebleu).

Each metric returns one score per example so that intervals and paired comparisons are possible.
The registry maps a metric name to its function and its direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """A per-example metric and whether higher is better."""

    name: str
    fn: Callable[[Sequence[str], Sequence[str]], np.ndarray]
    higher_is_better: bool


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 per example (rouge-score, no stemming: exact tokens matter for short answers)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return np.array(
        [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    )


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """1.0 when the stripped prediction equals the stripped reference."""
    return np.array([float(p.strip() == r.strip()) for p, r in zip(predictions, references, strict=True)])


def chrf(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence-level chrF (sacrebleu), 0-100."""
    from sacrebleu.metrics import CHRF

    m = CHRF()
    return np.array([m.sentence_score(p, [r]).score for p, r in zip(predictions, references, strict=True)])


METRICS: dict[str, Metric] = {
    "rougeL": Metric("rougeL", rouge_l, True),
    "exact_match": Metric("exact_match", exact_match, True),
    "chrf": Metric("chrf", chrf, True),
}


def get_metric(name: str) -> Metric:
    """Look up a task metric; unknown names list the known ones."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(sorted(METRICS))}, eval_loss")
    return METRICS[name]


#: Default metrics per tuning mode (the modes package extends this as modes are added).
MODE_METRICS: dict[str, tuple[str, ...]] = {
    "chat": ("eval_loss", "rougeL"),
    "instruct": ("eval_loss", "rougeL", "exact_match"),
}


def metrics_for_mode(mode: str) -> tuple[str, ...]:
    """The metrics a mode is judged by; unknown modes list the known ones."""
    if mode not in MODE_METRICS:
        raise ValueError(f"--mode {mode}: unknown mode; known: {', '.join(sorted(MODE_METRICS))}")
    return MODE_METRICS[mode]
