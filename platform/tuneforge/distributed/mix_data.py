"""Data-mix search: tokenize each train source once, then let every trial mix packed blocks by weight.

A sweep over ``data.mix`` shares must not tokenize per trial, and a trial cannot launch Ray Data
tasks anyway (its 0.01-CPU placement group would capture them). So the sweep driver tokenizes
each train source on its own (through the tokenized-data cache, one entry per source) plus the
job's eval split once, and a trial builds its train set from the cached Parquet blocks with pyarrow:
source ``i`` with ``b_i`` blocks and weight ``w_i`` gets about ``B * w_i / sum(w)`` blocks
(``B = sum(b_i)``), subsampled or repeated by the same deterministic ``repeat_count`` rule as record
mixing, keyed by block index and seed. The result is handed to Train as an in-memory dataset
(``ray.data.from_arrow``: an object-store put, no tasks).

Mixing whole packed blocks, not records, means a block holds records of one source only; over a
few hundred blocks the shares are the same. Exact duplicates across *different* sources are not
removed in this mode (each source is deduplicated within itself). The cache directory must be
readable where trials run (shared storage on a multi-node cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray.data

from tuneforge.config import JobConfig
from tuneforge.data.mixing import mix_factors, repeat_count
from tuneforge.data.plan import DataPlan
from tuneforge.data.tokenize_blocks import MODEL_COLUMNS_PACKED, MODEL_COLUMNS_PADDED
from tuneforge.distributed.data_pipeline import PreparedData, build_datasets, build_plan


@dataclass
class MixSources:
    """Per-source cache entries (train blocks) and the shared eval split, ready for any mix."""

    train_dirs: list[str]
    blocks: list[int]
    eval: PreparedData
    columns: list[str]


def prepare_mix_sources(job: JobConfig, tokenizer_dir: str, plan: DataPlan | None = None) -> MixSources:
    """Tokenize every train source alone (cached) and the job's eval split once (materialised).

    ``plan`` is the job's own data plan (the sweep's): given, the eval build reuses it instead of
    reading every file again. Each per-source build plans its one source (with the eval files) on
    its own, because its dedup is within that source only.
    """
    d = job.data
    per_source = []
    for spec in d.train_files:
        one = d.model_copy(update={"train_files": [spec.model_copy(update={"weight": None})]})
        one_plan = build_plan(one, job.trainer.seed)
        per_source.append(build_datasets(one, job.trainer, tokenizer_dir, one_plan))
    plan = plan or build_plan(d, job.trainer.seed)
    evald = build_datasets(d, job.trainer, tokenizer_dir, plan, materialize=True)
    columns = MODEL_COLUMNS_PACKED if d.packing else MODEL_COLUMNS_PADDED
    return MixSources(
        train_dirs=[str(Path(p.cache_dir or "") / "train") for p in per_source],
        blocks=[int(p.stats["train_blocks"]) for p in per_source],
        eval=evald,
        columns=columns,
    )


def mixed_block_indices(blocks: list[int], weights: list[float], seed: int) -> list[list[int]]:
    """Per source, the block indices (with repeats) the weighted mix takes; pure and deterministic."""
    factors = mix_factors(blocks, weights)
    return [
        [j for j in range(n) for _ in range(repeat_count(f"block{j}", i, factor, seed))]
        for i, (n, factor) in enumerate(zip(blocks, factors, strict=True))
    ]


def _read_blocks(train_dir: str, columns: list[str]) -> pa.Table:
    files = sorted(str(f) for f in Path(train_dir).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def mixed_datasets(sources: MixSources, weights: list[float], seed: int) -> PreparedData:
    """The train set of one trial's mix (in memory, no Ray Data tasks) with the shared eval split."""
    picks = mixed_block_indices(sources.blocks, weights, seed)
    tables = [
        _read_blocks(path, sources.columns).take(pa.array(idx, type=pa.int64()))
        for path, idx in zip(sources.train_dirs, picks, strict=True)
        if idx
    ]
    train = pa.concat_tables(tables)
    shares = [len(idx) / max(1, train.num_rows) for idx in picks]
    stats: dict[str, Any] = {
        **{k: v for k, v in sources.eval.stats.items() if not k.startswith("train_")},
        "train_blocks": train.num_rows,
        "mix_blocks": [len(idx) for idx in picks],
        "mix_shares": [round(s, 4) for s in shares],
    }
    return PreparedData(ray.data.from_arrow(train), sources.eval.eval, stats, sources.eval.report)


__all__ = ["MixSources", "mixed_block_indices", "mixed_datasets", "prepare_mix_sources"]
