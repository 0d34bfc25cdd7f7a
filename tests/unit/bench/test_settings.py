"""Bench settings: the two defaults, the worker count, and the job every path follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.bench.settings import (
    SMOLLM2,
    BenchSettings,
    bench_job,
    defaults_for,
    machine_workers,
    with_paths,
)


def test_defaults() -> None:
    tiny = defaults_for("tiny")
    assert (tiny.rows, tiny.seq_len, tiny.tokens_per_step) == (8, 512, 4096)
    assert tiny.steps == tiny.warmup + tiny.windows * tiny.window
    small = defaults_for("smollm2")
    assert small.model == "smollm2" and small.steps < tiny.steps
    with pytest.raises(ValueError, match="--model"):
        defaults_for("gpt5")


def test_machine_workers_divides_the_batch() -> None:
    assert machine_workers(8, use_gpu=False, cores=2) == 2
    assert machine_workers(8, use_gpu=False, cores=6) == 4
    assert machine_workers(8, use_gpu=False, cores=1) == 2
    assert machine_workers(8, use_gpu=True, gpus=8) == 8


def test_paths_are_checked() -> None:
    assert with_paths(BenchSettings(), ["plain", "hf"]).paths == ("plain", "hf")
    assert with_paths(BenchSettings(), None).paths == BenchSettings().paths
    with pytest.raises(ValueError, match="unknown"):
        with_paths(BenchSettings(), ["plain", "fast"])


def test_bench_job_fixes_what_timing_depends_on(tmp_path: Path) -> None:
    s = BenchSettings()
    one = bench_job(s, tmp_path, tmp_path / "d.jsonl", workers=1)
    two = bench_job(s, tmp_path, tmp_path / "d.jsonl", workers=2)
    assert one.trainer.lr_scheduler == "constant" and one.trainer.eval_every == 0
    assert one.trainer.max_steps == s.steps and one.trainer.log_every == s.window
    assert (one.distributed.zero_stage, two.distributed.zero_stage) == (0, 2)
    assert one.trainer.micro_batch_size == 8 and two.trainer.micro_batch_size == 4  # same global batch
    assert one.registry.model_name is None and str(tmp_path) in (one.tracking.uri or "")
    assert one.model.tiny.hidden_size == 128 and one.model.tiny.num_hidden_layers == 4
    real = bench_job(defaults_for("smollm2"), tmp_path, tmp_path / "d.jsonl", workers=1)
    assert real.model.name_or_path == SMOLLM2 and real.data.template == "tokenizer"
    again = bench_job(s, tmp_path, tmp_path / "other.jsonl", base=real, workers=2)  # a --config job
    assert again.model.name_or_path == SMOLLM2 and again.trainer.max_steps == s.steps
