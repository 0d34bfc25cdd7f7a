"""The machine's own limit: the best sustained matmul FLOP/s, fp32 and bf16, at the model's shapes.

Utilisation is reported against what this machine (this many threads, this device) actually reaches
on dense GEMMs, measured in the same run, not against a datasheet: the CPUs these runs share differ
(AVX512-BF16 with or without AMX) and other work on them moves the numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from tuneforge.bench.measure import ModelShape, gemm_flops

#: a large square GEMM: the best case of the BLAS, whatever the model's shapes
SQUARE = (2048, 2048, 2048)


@dataclass(frozen=True)
class GemmResult:
    m: int
    k: int
    n: int
    dtype: str
    flops_per_second: float


def model_gemms(shape: ModelShape, tokens: int) -> list[tuple[int, int, int]]:
    """The model's matmuls at ``tokens`` tokens per step ([tokens x in] @ [in x out]), plus SQUARE."""
    h = shape.hidden
    shapes = [
        (tokens, h, h),
        (tokens, h, shape.intermediate),
        (tokens, shape.intermediate, h),
        (tokens, h, shape.vocab),
    ]
    return sorted(set(shapes)) + [SQUARE]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_gemm(
    m: int,
    k: int,
    n: int,
    dtype: torch.dtype,
    device: torch.device,
    repeats: int = 3,
    min_seconds: float = 0.2,
) -> float:
    """Best-of-``repeats`` sustained FLOP/s of ``[m x k] @ [k x n]`` (each repeat runs >= ``min_seconds``)."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    torch.matmul(a, b)  # first call: allocation, kernel choice
    _sync(device)
    best = 0.0
    for _ in range(repeats):
        iters, started = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            iters += 1
            if iters % 4 == 0 or device.type != "cuda":
                _sync(device)
                elapsed = time.perf_counter() - started
                if elapsed >= min_seconds:
                    break
        best = max(best, iters * gemm_flops(m, k, n) / elapsed)
    return best


def measure_peak(
    shape: ModelShape,
    tokens: int,
    device: torch.device,
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16),
    repeats: int = 3,
    min_seconds: float = 0.2,
) -> dict[str, object]:
    """Per dtype: every shape's sustained FLOP/s and the best of them (the peak MFU is taken against)."""
    out: dict[str, object] = {"device": str(device), "threads": torch.get_num_threads(), "gemms": []}
    gemms: list[dict[str, object]] = []
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        best = 0.0
        for m, k, n in model_gemms(shape, tokens):
            rate = time_gemm(m, k, n, dtype, device, repeats, min_seconds)
            gemms.append({"m": m, "k": k, "n": n, "dtype": name, "flops_per_second": rate})
            best = max(best, rate)
        out[f"peak_{name}"] = best
    out["gemms"] = gemms
    return out


def device_peak_bf16(device: torch.device) -> float | None:
    """The datasheet dense bf16 peak of a known GPU (FLOP/s), beside the measured one; None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12), ("A10", 125e12)):
        if key in name:
            return peak
    return None
