"""Numeric precision: the dtype weights are held in, and the dtype matmuls run in under autocast.

``model.dtype`` names one of four set-ups:

* ``float32``: fp32 weights and compute;
* ``bfloat16`` / ``float16``: half-precision weights, fp32 master weights in the optimizer
  (DeepSpeed's ``bf16`` / ``fp16`` modes);
* ``bf16-mixed``: fp32 weights, bf16 matmuls under ``torch.autocast`` (DeepSpeed's ``torch_autocast``):
  the weights, gradients and optimizer step stay fp32, only the linear layers' inputs are cast;
* ``auto``: bf16 weights on GPU; on a CPU with native bf16 dot products (AVX512-BF16 or AMX)
  ``bf16-mixed``, else ``float32``.

Why ``bf16-mixed`` is the CPU default and not bf16 weights: measured on SmolLM2-135M full fine-tuning
on this project's 2-core AVX512-BF16 machine (docs/performance.md), autocast was the fastest of the
three and its loss curve stayed within a few tenths of a percent of fp32, while bf16 weights were
slower than autocast (DeepSpeed's fp32 master copy and per-step casts cost more than they save on
a CPU). Without bf16 instructions the CPU emulates bf16 and is slower than fp32, so ``auto`` keeps
fp32 there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

WEIGHT_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "bf16-mixed": torch.float32,
}

#: /proc/cpuinfo flags of CPUs with native bf16 dot products (AVX512-BF16; AMX tiles).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of a ``/proc/cpuinfo`` text (its first ``flags`` line)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@cache
def cpu_supports_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (not Linux, or unreadable: assume not)."""
    try:
        text = Path(cpuinfo_path).read_text()
    except OSError:
        return False
    return bool(cpu_flags(text) & BF16_CPU_FLAGS)


def resolved_precision(name: str, use_gpu: bool, bf16_cpu: bool | None = None) -> str:
    """``auto`` made concrete for this device (``bf16_cpu``: this CPU's answer unless given)."""
    if name != "auto":
        return name
    if use_gpu:
        return "bfloat16"
    supported = cpu_supports_bf16() if bf16_cpu is None else bf16_cpu
    return "bf16-mixed" if supported else "float32"


def resolve_dtype(name: str, use_gpu: bool, bf16_cpu: bool | None = None) -> torch.dtype:
    """The dtype the model's weights are loaded and trained in."""
    return WEIGHT_DTYPES[resolved_precision(name, use_gpu, bf16_cpu)]


def autocast_dtype(name: str, use_gpu: bool, bf16_cpu: bool | None = None) -> torch.dtype | None:
    """The dtype matmuls run in under autocast, or None when no autocast is used."""
    return torch.bfloat16 if resolved_precision(name, use_gpu, bf16_cpu) == "bf16-mixed" else None


__all__ = [
    "BF16_CPU_FLAGS",
    "WEIGHT_DTYPES",
    "autocast_dtype",
    "cpu_flags",
    "cpu_supports_bf16",
    "resolve_dtype",
    "resolved_precision",
]
