"""Precision resolution: what ``model.dtype`` means on each device (no training here; see
tests/unit/training/test_engine.py for bf16-mixed against fp32 through a real DeepSpeed engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tuneforge.config import ConfigError, config_from_dict
from tuneforge.models.precision import (
    autocast_dtype,
    cpu_flags,
    cpu_supports_bf16,
    resolve_dtype,
    resolved_precision,
)

EPYC_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


@pytest.mark.parametrize(
    ("name", "gpu", "bf16_cpu", "weights", "compute"),
    [
        ("auto", True, False, torch.bfloat16, None),  # GPU: DeepSpeed's bf16 mode
        ("auto", False, True, torch.float32, torch.bfloat16),  # AVX512-BF16/AMX: fp32 weights + autocast
        ("auto", False, False, torch.float32, None),  # emulated bf16 is slower than fp32: stay fp32
        ("float32", False, True, torch.float32, None),
        ("bfloat16", False, True, torch.bfloat16, None),
        ("bf16-mixed", False, False, torch.float32, torch.bfloat16),  # asked for: honoured anywhere
    ],
)
def test_each_setting_names_weight_and_compute_dtypes(
    name: str, gpu: bool, bf16_cpu: bool, weights: torch.dtype, compute: torch.dtype | None
) -> None:
    assert resolve_dtype(name, gpu, bf16_cpu) is weights
    assert autocast_dtype(name, gpu, bf16_cpu) is compute


def test_auto_is_concrete_after_resolution() -> None:
    assert resolved_precision("auto", False, True) == "bf16-mixed"
    assert resolved_precision("auto", False, False) == "float32"
    assert resolved_precision("auto", True) == "bfloat16"


def test_bf16_support_is_read_from_cpu_flags(tmp_path: Path) -> None:
    assert "avx512_bf16" in cpu_flags(EPYC_FLAGS)
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_text(EPYC_FLAGS)
    old.write_text(OLD_FLAGS)
    assert cpu_supports_bf16(str(new)) and not cpu_supports_bf16(str(old))
    assert not cpu_supports_bf16(str(tmp_path / "absent"))  # not Linux: assume no bf16


def test_config_accepts_bf16_mixed_and_names_the_field_otherwise() -> None:
    base = {"data": {"train_files": ["x.jsonl"]}, "registry": {"model_name": None}}
    assert config_from_dict({**base, "model": {"dtype": "bf16-mixed"}}).model.dtype == "bf16-mixed"
    with pytest.raises(ConfigError, match="model.dtype"):
        config_from_dict({**base, "model": {"dtype": "bf16_mixed"}})
