"""Deterministic dataset mixing: per-source repetition factors from weights, applied per record.

Semantics: ``DatasetSpec.weight`` values are **relative shares of the training mix** (set on every
train file or on none; none keeps the files' natural proportions, i.e. plain concatenation). With sources
of ``n_i`` train records (after dedup and the eval split) and weights ``w_i``, the mix keeps the
natural total ``N = sum(n_i)`` and gives source ``i`` a target of ``N * w_i / sum(w)`` records, i.e.
a factor ``f_i = target_i / n_i``: ``f < 1`` subsamples, ``f > 1`` repeats (``floor(f)`` copies of
every record plus one more for a ``frac(f)`` share). Which records get the extra copy is decided by
a hash of ``(seed, source index, content hash)``, so the sample depends on nothing but the data and
the seed: the driver can count it exactly, and every Ray task draws the same one. With one source
(or equal weights and sizes) every factor is 1 and nothing changes. Eval data is never mixed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def unit_interval(*parts: object) -> float:
    """A uniform number in [0, 1) from sha256 of the parts (stable across processes and runs)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest, 16) / 2**256


def mix_factors(counts: Sequence[int], weights: Sequence[float | None]) -> list[float]:
    """Per-source repetition factors that turn ``counts`` into shares proportional to ``weights``.

    No weights at all (every one None) keeps the natural proportions: every factor is 1.
    """
    if len(counts) != len(weights):
        raise ValueError("counts and weights differ in length")
    if all(w is None for w in weights):
        return [1.0] * len(counts)
    if any(w is None or w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    present = [(n, float(w)) for n, w in zip(counts, weights, strict=True) if n > 0 and w is not None]
    if len(present) <= 1:
        return [1.0] * len(counts)
    total = sum(n for n, _ in present)
    wsum = sum(w for _, w in present)
    return [total * float(w) / wsum / n if n > 0 and w else 0.0 for n, w in zip(counts, weights, strict=True)]


def repeat_count(content_hash: str, source_index: int, factor: float, seed: int) -> int:
    """How many copies of one record enter the train mix (expected value = ``factor``)."""
    if factor == 1.0:
        return 1
    whole = math.floor(factor)
    extra = 1 if unit_interval(seed, "mix", source_index, content_hash) < factor - whole else 0
    return whole + extra
