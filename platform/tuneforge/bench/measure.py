"""The benchmark's arithmetic: median-of-windows rates, padding share, model FLOPs and utilisation.

Pure functions, so the numbers in a report can be checked by hand (tests/unit/bench/test_measure.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def window_rates(
    step_seconds: Sequence[float], step_tokens: Sequence[float], warmup: int, window: int
) -> list[float]:
    """Tokens/s of each whole window of ``window`` steps after the first ``warmup`` steps.

    Every path is timed per optimizer step (the full path per log window of the same size), so
    dropping the same warm-up steps and cutting the same windows treats all paths alike. A trailing
    partial window is ignored.
    """
    if len(step_seconds) != len(step_tokens):
        raise ValueError("one token count per step")
    if window < 1 or warmup < 0:
        raise ValueError("window must be >= 1 and warmup >= 0")
    rates = []
    for start in range(warmup, len(step_seconds) - window + 1, window):
        seconds = sum(step_seconds[start : start + window])
        rates.append(sum(step_tokens[start : start + window]) / seconds if seconds > 0 else float("nan"))
    return rates


def median_rate(rates: Sequence[float]) -> float:
    """The reported rate: the median window (robust to one window that met a noisy neighbour)."""
    return float(statistics.median(rates)) if rates else float("nan")


def padding_share(real_tokens: float, positions: float) -> float:
    """Share of computed positions that are padding: 1 - real / (rows x row length)."""
    return 1.0 - real_tokens / positions if positions else float("nan")


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs of a decoder-only transformer."""

    params: int  # every parameter
    embedding_params: int  # input embedding table (a lookup, not a matmul) when untied from the LM head
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    seq_len: int

    @property
    def matmul_params(self) -> int:
        """N of 6·N: parameters that take part in a matmul per token (all but an untied input embedding)."""
        return self.params - self.embedding_params


def flops_per_token(shape: ModelShape) -> float:
    """Training FLOPs per trained token: 6·N + 12·L·h·s (forward + backward, PaLM's accounting).

    6·N counts each matmul weight once forward (2 FLOPs per multiply-add) and twice backward;
    12·L·h·s is the attention scores and weighted sum (QKᵀ and AV, forward + backward) over a context of
    ``s`` tokens, taken as the full row length (what SDPA computes for a packed or padded row), not
    halved for causality. Padding positions are not counted as trained tokens: their FLOPs are waste.
    """
    return 6.0 * shape.matmul_params + 12.0 * shape.layers * shape.hidden * shape.seq_len


def mfu(tokens_per_second: float, flops_per_tok: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the measured peak."""
    return tokens_per_second * flops_per_tok / peak_flops if peak_flops > 0 else float("nan")


def gemm_flops(m: int, k: int, n: int) -> float:
    """FLOPs of one [m x k] @ [k x n] matmul."""
    return 2.0 * m * k * n
