"""The matmul peak: the model's GEMM shapes, and a positive best-of-repeats rate."""

from __future__ import annotations

import torch

from tuneforge.bench.measure import ModelShape
from tuneforge.bench.peak import SQUARE, device_peak_bf16, measure_peak, model_gemms, time_gemm

SHAPE = ModelShape(params=1, embedding_params=0, layers=1, hidden=16, intermediate=32, vocab=64, seq_len=8)


def test_model_gemms_are_the_layers_shapes_plus_a_square() -> None:
    gemms = model_gemms(SHAPE, tokens=128)
    assert (128, 16, 32) in gemms and (128, 32, 16) in gemms and (128, 16, 64) in gemms
    assert gemms[-1] == SQUARE


def test_timed_gemms_are_positive_and_the_peak_is_their_best(monkeypatch) -> None:
    import tuneforge.bench.peak as peak

    assert time_gemm(32, 32, 32, torch.float32, torch.device("cpu"), repeats=2, min_seconds=0.001) > 0
    monkeypatch.setattr(peak, "SQUARE", (64, 64, 64))
    out = measure_peak(SHAPE, 64, torch.device("cpu"), repeats=1, min_seconds=0.001)
    fp32 = [g["flops_per_second"] for g in out["gemms"] if g["dtype"] == "float32"]  # type: ignore[attr-defined]
    assert out["peak_float32"] == max(fp32) > 0 and out["peak_bfloat16"] > 0  # type: ignore[operator]
    assert device_peak_bf16(torch.device("cpu")) is None
