"""The metric table the metrics are looked up in: metric name -> ``Metric``, mode name -> its metrics.

Evaluation imports nothing of ``tuneforge.modes``; the modes fill these tables instead. ``import
tuneforge.modes`` registers every built-in mode's metric list (``set_mode_metrics``, called by
``tuneforge.modes.register``) and the metrics that need a mode's own prompts to read its output
(``register_mode_metric``: the filter mode's sentence metrics, chat+instruct's per-part ROUGE-L).
Generic metrics (ROUGE-L, chrF, GLEU, ...) are registered by ``tuneforge.evaluation.metrics``.

So whoever scores a mode's metrics imports ``tuneforge.modes`` first: the CLI's ``eval`` and
``promote`` do, the driver does (``distributed.stages`` imports the modes), and so does every
module of ``tuneforge.modes`` that scores (``modes.baselines``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A per-example metric and whether higher is better.

    ``needs_context``: ``fn(predictions, references, contexts)`` also gets each example's conversation
    (the prompt the model answered), for judgements that need the input (see ``mode_metrics``).
    """

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool
    needs_context: bool = False


#: Every registered task metric by name (``eval_loss`` is not one: it needs the model, not text).
METRICS: dict[str, Metric] = {}
#: Mode name -> the metrics ``eval --mode`` reports for it, in the mode's order.
MODE_METRICS: dict[str, tuple[str, ...]] = {}


def register_metric(metric: Metric) -> Metric:
    """Add (or replace) a task metric."""
    METRICS[metric.name] = metric
    return metric


def register_mode_metric(
    name: str, fn: Callable[..., Any], *, higher_is_better: bool = True, needs_context: bool = False
) -> Metric:
    """A metric a mode contributes (one that must know the mode's prompts to read its output)."""
    return register_metric(Metric(name, fn, higher_is_better, needs_context))


def set_mode_metrics(mode: str, metrics: Sequence[str]) -> None:
    """Record the metrics mode ``mode`` is judged by (``tuneforge.modes.register`` calls this)."""
    MODE_METRICS[mode] = tuple(metrics)


def get_metric(name: str) -> Metric:
    """Look up a task metric; unknown names list the known ones."""
    if name not in METRICS:
        raise ValueError(
            f"unknown metric '{name}'; known: {', '.join(sorted(METRICS))}, eval_loss"
            " (the modes' own metrics are registered by `import tuneforge.modes`)"
        )
    return METRICS[name]
