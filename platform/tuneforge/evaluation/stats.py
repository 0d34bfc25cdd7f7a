"""Bootstrap confidence intervals, plain and paired.

Promotion decisions compare two models on the *same* examples, so the paired bootstrap resamples
example indices once and applies them to both score vectors: the interval is on the difference,
which is much tighter than comparing two independent intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


def bootstrap_ci(
    values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_ci: no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    return Interval(
        float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
    )


def ratio_bootstrap_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``sum(numerators) / sum(denominators)``, resampling examples.

    A token-weighted mean loss is such a ratio (loss summed over an example's tokens / its token
    count): it is what training reports, so evaluation reports the same estimate.
    """
    num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    if num.size == 0 or num.shape != den.shape:
        raise ValueError("ratio_bootstrap_ci: needs paired, non-empty numerators and denominators")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(n_resamples, num.size))
    ratios = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    alpha = (1.0 - confidence) / 2
    return Interval(
        float(num.sum() / den.sum()), float(np.quantile(ratios, alpha)), float(np.quantile(ratios, 1 - alpha))
    )


def paired_bootstrap(
    candidate: np.ndarray,
    reference: np.ndarray,
    higher_is_better: bool,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of the per-example improvement of ``candidate`` over ``reference``.

    The improvement is oriented so that positive always means "candidate is better", whichever
    direction the metric runs.
    """
    c, r = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if c.shape != r.shape:
        raise ValueError(f"paired_bootstrap: {c.shape} vs {r.shape}: scores must be paired per example")
    diff = (c - r) if higher_is_better else (r - c)
    return bootstrap_ci(diff, n_resamples, confidence, seed)
