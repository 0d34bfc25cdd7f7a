"""The plain reference loop: times every step and trains (its loss falls on learnable batches)."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.bench.plain_loop import run_plain
from tuneforge.config import config_from_dict
from tuneforge.models.factory import build_tiny_model
from tuneforge.testing import TINY_MODEL, synthetic_batches

VOCAB = 300


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """A saved tiny model and the job that names it (constant LR, as the bench runs every path)."""
    base = tmp_path_factory.mktemp("base")
    build_tiny_model(TINY_MODEL, VOCAB, seed=0).save_pretrained(str(base))
    job = config_from_dict(
        {
            "data": {"train_files": ["x.jsonl"]},
            "model": {"name_or_path": str(base)},
            "trainer": {"lr": 3e-3, "lr_scheduler": "constant", "max_steps": 6, "eval_every": 0},
        }
    )
    return job.model_dump(mode="json"), str(base)


def test_every_step_is_timed_and_the_loss_falls(tiny: tuple[dict[str, Any], str]) -> None:
    raw, base = tiny
    batches = synthetic_batches(2, 2, 32, VOCAB, seed=1)
    out = run_plain(raw, base, batches, steps=6)
    assert len(out["step_seconds"]) == 6 and all(s > 0 for s in out["step_seconds"])
    assert out["losses"][-1] < out["losses"][0]
    assert out["peak_rss_bytes"] > 0 and out["device"] == "cpu"


def test_the_loop_computes_in_the_jobs_precision(tiny: tuple[dict[str, Any], str]) -> None:
    """bf16-mixed (the CPU default where bf16 is native) runs the forward under autocast, as the full
    path's engine does: its losses differ from fp32's in the low bits, not in what is learnt."""
    raw, base = tiny
    batches = synthetic_batches(2, 2, 32, VOCAB, seed=1)
    runs = {
        dtype: run_plain({**raw, "model": {**raw["model"], "dtype": dtype}}, base, batches, steps=3)["losses"]
        for dtype in ("float32", "bf16-mixed")
    }
    assert runs["float32"] != runs["bf16-mixed"]
    assert runs["bf16-mixed"] == pytest.approx(runs["float32"], rel=0.03)
