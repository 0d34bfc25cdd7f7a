"""The HF Trainer path trains exactly the plain loop's batches: same steps, same losses."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.bench.hf_trainer import RowDataset, run_hf, stack_rows
from tuneforge.bench.plain_loop import run_plain
from tuneforge.testing import synthetic_batches

from .test_plain_loop import VOCAB, tiny  # noqa: F401  (the shared tiny-model fixture)


def test_rows_come_back_as_the_same_batches() -> None:
    batches = synthetic_batches(3, 2, 8, VOCAB, seed=1)
    ds = RowDataset(batches)
    assert len(ds) == 6
    again = stack_rows([ds[2], ds[3]])
    assert all((again[k] == batches[1][k]).all() for k in batches[1])


def test_hf_trainer_matches_the_plain_loop(tiny: tuple[dict[str, Any], str]) -> None:  # noqa: F811
    raw, base = tiny
    batches = synthetic_batches(3, 2, 32, VOCAB, seed=1)
    plain = run_plain(raw, base, batches, steps=4)
    hf = run_hf(raw, base, batches, steps=4)
    assert len(hf["step_seconds"]) == 4
    assert hf["train_loss"] == pytest.approx(sum(plain["losses"]) / 4, rel=1e-3)
