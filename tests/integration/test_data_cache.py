"""Tokenized-data cache on a real Ray head: a rerun reads the Parquet entry instead of tokenizing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray.data.dataset import MaterializedDataset

from tuneforge.config import load_config
from tuneforge.distributed.cluster import ensure_ray
from tuneforge.distributed.data_pipeline import (
    MATERIALIZE_MAX_BYTES,
    build_datasets,
    build_plan,
    cache_root,
    split_bytes,
)
from tuneforge.models.base import prepare_base

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _rows(ds) -> list[tuple]:
    """The rows as a sorted list: Ray Data reads blocks in parallel, so compare them as a multiset."""
    return sorted(tuple(r["input_ids"].tolist() + r["labels"].tolist()) for r in ds.iter_rows())


def test_cache_hit_reproduces_rows_and_settings_change_the_key(ray_head, tmp_path: Path):
    job = load_config(REPO / "jobs/configs/finetune/tiny_cpu.yaml", [f"data.cache_dir={tmp_path / 'cache'}"])
    ensure_ray(job)
    plan = build_plan(job.data, job.trainer.seed)
    base = prepare_base(job.model, plan.sample_texts(job.data.template), tmp_path / "base", job.trainer.seed)

    first = build_datasets(job.data, job.trainer, str(base), plan)
    assert not first.cache_hit and first.stats["train_blocks"] > 0
    first_rows = _rows(first.train)  # the datasets stream from the entry's files (read them now)
    assert len(first_rows) == first.stats["train_blocks"]
    entry = Path(first.cache_dir)
    assert entry.parent == cache_root(job.data) and (entry / "manifest.json").exists()
    assert sorted(entry.glob("train/*.parquet")) and not list(entry.parent.glob(".*.tmp"))

    again = build_datasets(job.data, job.trainer, str(base), build_plan(job.data, job.trainer.seed))
    assert again.cache_hit and again.cache_dir == first.cache_dir
    assert again.stats["train_tokens"] == first.stats["train_tokens"]
    assert _rows(again.train) == first_rows
    # Small splits are pinned in the object store (no Ray Data execution per epoch), in the cache's
    # order; a split over the limit streams from the Parquet files in that same order.
    assert isinstance(again.train, MaterializedDataset)
    assert split_bytes(entry / "train") <= MATERIALIZE_MAX_BYTES
    streamed = build_datasets(job.data, job.trainer, str(base), plan, materialize=False)
    assert not isinstance(streamed.train, MaterializedDataset)
    assert _rows(streamed.train) == first_rows
    assert (
        json.loads((entry / "manifest.json").read_text())["stats"]["eval_blocks"]
        == first.stats["eval_blocks"]
    )

    shorter = job.model_copy(update={"trainer": job.trainer.model_copy(update={"max_seq_len": 64})})
    other = build_datasets(shorter.data, shorter.trainer, str(base), plan)
    assert not other.cache_hit and other.cache_dir != first.cache_dir
    assert other.stats["train_blocks"] > first.stats["train_blocks"]

    (entry / "manifest.json").unlink()  # a half-written entry (no manifest) is rebuilt, not trusted
    rebuilt = build_datasets(job.data, job.trainer, str(base), plan)
    assert not rebuilt.cache_hit and _rows(rebuilt.train) == first_rows
