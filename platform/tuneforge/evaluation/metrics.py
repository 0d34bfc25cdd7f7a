"""Task metrics per example, computed with the field's libraries (rouge-score, sacrebleu).

Each metric returns one score per example so that intervals and paired comparisons are possible.
The registry maps a metric name to its function and its direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tuneforge.evaluation import mode_metrics as mm


@dataclass(frozen=True)
class Metric:
    """A per-example metric and whether higher is better.

    ``needs_context``: ``fn(predictions, references, contexts)`` also gets each example's conversation
    (the prompt the model answered), for judgements that need the input (see ``mode_metrics``).
    """

    name: str
    fn: Callable[..., np.ndarray]
    higher_is_better: bool
    needs_context: bool = False


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
    "gleu": Metric("gleu", mm.gleu, True),
    "cer": Metric("cer", mm.cer, False),
    "kept_rate": Metric("kept_rate", mm.kept_rate, True, needs_context=True),
    "structure_validity": Metric("structure_validity", mm.structure_validity, True),
    "step_recall": Metric("step_recall", mm.step_recall, True),
    "sentence_precision": Metric("sentence_precision", mm.sentence_precision, True),
    "sentence_recall": Metric("sentence_recall", mm.sentence_recall, True),
    "sentence_f1": Metric("sentence_f1", mm.sentence_f1, True),
    "question_overlap": Metric("question_overlap", mm.question_overlap, True),
    "answerability": Metric("answerability", mm.answerability, True, needs_context=True),
    "rougeL_chat": Metric("rougeL_chat", mm.rouge_l_chat, True, needs_context=True),
    "rougeL_instruct": Metric("rougeL_instruct", mm.rouge_l_instruct, True, needs_context=True),
}


def get_metric(name: str) -> Metric:
    """Look up a task metric; unknown names list the known ones."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(sorted(METRICS))}, eval_loss")
    return METRICS[name]


def score(
    name: str, predictions: Sequence[str], references: Sequence[str], contexts: Sequence = ()
) -> np.ndarray:
    """Per-example scores of a task metric; context metrics get ``contexts`` (one conversation each)."""
    metric = get_metric(name)
    if metric.needs_context:
        return metric.fn(predictions, references, contexts)
    return metric.fn(predictions, references)


class _ModeMetrics(Mapping[str, tuple[str, ...]]):
    """Mode name -> its metrics, read from the modes registry on first use.

    Lazy because ``tuneforge.modes`` imports this package: the registry is the one source of truth
    and a mode added with ``tuneforge.modes.register`` shows up here too.
    """

    def _table(self) -> dict[str, tuple[str, ...]]:
        from tuneforge.modes import all_modes

        return {name: mode.metrics for name, mode in all_modes().items()}

    def __getitem__(self, mode: str) -> tuple[str, ...]:
        return self._table()[mode]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


#: Default metrics per tuning mode, from the modes registry (``tuneforge eval --mode``).
MODE_METRICS: Mapping[str, tuple[str, ...]] = _ModeMetrics()


def metrics_for_mode(mode: str) -> tuple[str, ...]:
    """The metrics a mode is judged by; unknown modes list the known ones."""
    if mode not in MODE_METRICS and "." in mode:  # a user's mode module, by dotted name
        from tuneforge.modes import get_mode

        return get_mode(mode).metrics
    if mode not in MODE_METRICS:
        raise ValueError(f"--mode {mode}: unknown mode; known: {', '.join(MODE_METRICS)}")
    return MODE_METRICS[mode]
