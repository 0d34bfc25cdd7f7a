"""Task metrics per example, computed with the field's libraries (rouge-score, sacrebleu).

Each metric returns one score per example so that intervals and paired comparisons are possible.
The metric table (``metric_table``) maps a metric name to its function and its direction; this module
registers the generic metrics, the modes register their own when ``tuneforge.modes`` is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np

from tuneforge.evaluation import mode_metrics as mm
from tuneforge.evaluation.metric_table import (
    METRICS,
    MODE_METRICS,
    Metric,
    get_metric,
    register_metric,
)

__all__ = ["METRICS", "MODE_METRICS", "Metric", "get_metric", "metrics_for_mode", "register_metric", "score"]


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


for _metric in (
    Metric("rougeL", rouge_l, True),
    Metric("exact_match", exact_match, True),
    Metric("chrf", chrf, True),
    Metric("gleu", mm.gleu, True),
    Metric("cer", mm.cer, False),
    Metric("kept_rate", mm.kept_rate, True, needs_context=True),
    Metric("structure_validity", mm.structure_validity, True),
    Metric("step_recall", mm.step_recall, True),
    Metric("question_overlap", mm.question_overlap, True),
    Metric("answerability", mm.answerability, True, needs_context=True),
):
    register_metric(_metric)


def score(
    name: str, predictions: Sequence[str], references: Sequence[str], contexts: Sequence = ()
) -> np.ndarray:
    """Per-example scores of a task metric; context metrics get ``contexts`` (one conversation each)."""
    metric = get_metric(name)
    if metric.needs_context:
        return metric.fn(predictions, references, contexts)
    return metric.fn(predictions, references)


def metrics_for_mode(mode: str) -> tuple[str, ...]:
    """The metrics a mode is judged by; unknown modes list the known ones.

    The table is what the modes registered (``import tuneforge.modes``). A dotted name is a user's
    mode module: importing it registers its ``MODE`` (``tuneforge.modes.register``).
    """
    if mode not in MODE_METRICS and "." in mode:  # a user's mode module, by dotted name
        spec = getattr(importlib.import_module(mode), "MODE", None)
        if spec is None:
            raise ValueError(f"--mode {mode}: the module defines no MODE")
        return MODE_METRICS.get(spec.name, tuple(spec.metrics))
    if mode not in MODE_METRICS:
        known = ", ".join(MODE_METRICS) or "none registered (import tuneforge.modes)"
        raise ValueError(f"--mode {mode}: unknown mode; known: {known}")
    return MODE_METRICS[mode]
