"""The benchmark's arithmetic, checked by hand: windows, medians, padding share, FLOPs and MFU."""

from __future__ import annotations

import math

import pytest

from tuneforge.bench.measure import (
    ModelShape,
    flops_per_token,
    gemm_flops,
    median_rate,
    mfu,
    padding_share,
    window_rates,
)


def test_windows_drop_the_warmup_and_a_trailing_partial_window() -> None:
    seconds = [10.0, 1.0, 1.0, 2.0, 2.0, 5.0]  # a slow first step, then two windows of 2, then one spare
    tokens = [100.0] * 6
    assert window_rates(seconds, tokens, warmup=1, window=2) == [100.0, 50.0]


def test_windows_weigh_tokens_by_time_not_steps() -> None:
    assert window_rates([1.0, 3.0], [100.0, 300.0], warmup=0, window=2) == [100.0]


def test_window_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="one token count per step"):
        window_rates([1.0], [1.0, 2.0], 0, 1)
    with pytest.raises(ValueError, match="window"):
        window_rates([1.0], [1.0], 0, 0)


def test_median_of_windows_ignores_one_outlier() -> None:
    assert median_rate([100.0, 101.0, 5.0]) == 100.0
    assert math.isnan(median_rate([]))


def test_padding_share() -> None:
    assert padding_share(4096 - 41, 4096) == pytest.approx(41 / 4096)
    assert padding_share(512, 512) == 0.0
    assert math.isnan(padding_share(0, 0))


def test_flops_per_token_is_6n_plus_the_attention_term() -> None:
    shape = ModelShape(
        params=1000, embedding_params=200, layers=2, hidden=8, intermediate=16, vocab=25, seq_len=32
    )
    assert shape.matmul_params == 800
    assert flops_per_token(shape) == 6 * 800 + 12 * 2 * 8 * 32


def test_mfu_and_gemm_flops() -> None:
    assert gemm_flops(2, 3, 4) == 48
    assert mfu(1000.0, 1e6, 1e10) == pytest.approx(0.1)
    assert math.isnan(mfu(1000.0, 1e6, 0.0))
