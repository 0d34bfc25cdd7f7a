"""Tokenization throughput: Ray Data against one process running the fast tokenizer on the same text.

Three numbers on the same records: the fast tokenizer's batch call in this process (the yardstick),
the same call as Ray Data ``map_batches`` tasks (what the pipeline's parallelism buys or costs on this
machine, task start-up included), and the whole cold pipeline of ``tuneforge train``
(``build_datasets``: read, split, shuffle, encode with loss masks, pack, write the Parquet cache),
which also leaves the cache warm for the full-path runs that follow.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np

from tuneforge.config import config_from_dict
from tuneforge.models.tokenizer import load_tokenizer

BATCH = 256  # records per Ray Data task batch, as the pipeline's map_batches


@lru_cache(maxsize=2)
def _tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def count_tokens(texts: list[str], tokenizer: Any) -> int:
    """Tokens of ``texts`` by one batched fast-tokenizer call (no special tokens, no truncation)."""
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def single_process_rate(texts: list[str], tokenizer_dir: str, repeats: int = 3) -> dict[str, float]:
    """Records/s and tokens/s of the fast tokenizer in this process (best of ``repeats``)."""
    tok = _tokenizer(tokenizer_dir)
    count_tokens(texts[:16], tok)
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        tokens = count_tokens(texts, tok)
        best = min(best, time.perf_counter() - started)
    return _rate(len(texts), tokens, best)


def _rate(records: int, tokens: int, seconds: float) -> dict[str, float]:
    return {
        "records": records,
        "tokens": tokens,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "tokens_per_s": tokens / seconds,
    }


def _ray_batch(batch: dict[str, np.ndarray], tokenizer_dir: str) -> dict[str, np.ndarray]:
    tok = _tokenizer(tokenizer_dir)
    ids = tok(list(batch["text"]), add_special_tokens=False)["input_ids"]
    return {"n_tokens": np.asarray([len(x) for x in ids], dtype=np.int64)}


def ray_data_rate(texts: list[str], tokenizer_dir: str) -> dict[str, float]:
    """The same texts through Ray Data ``map_batches`` (a running Ray instance), materialised."""
    import ray.data

    started = time.perf_counter()
    ds = ray.data.from_items([{"text": t} for t in texts]).map_batches(
        _ray_batch,  # type: ignore[arg-type]  # Ray types fn as one-argument; fn_kwargs fills the rest
        batch_size=BATCH,
        batch_format="numpy",
        fn_kwargs={"tokenizer_dir": tokenizer_dir},
    )
    tokens = int(ds.sum("n_tokens"))  # type: ignore[arg-type]  # one column: a number
    seconds = time.perf_counter() - started
    return _rate(len(texts), tokens, seconds)


def run_tokenize_rates(job_raw: dict[str, Any], tokenizer_dir: str, texts: list[str]) -> dict[str, Any]:
    """In a fresh process: start Ray as ``tuneforge train`` does, measure both rates and the cold
    pipeline (which fills the job's token cache), then shut Ray down."""
    import ray

    from tuneforge.distributed.cluster import ensure_ray
    from tuneforge.distributed.data_pipeline import build_datasets, build_plan

    job = config_from_dict(job_raw)
    single = single_process_rate(texts, tokenizer_dir)
    started = time.perf_counter()
    ensure_ray(job)
    ray_start = time.perf_counter() - started
    try:
        ray_rate = ray_data_rate(texts, tokenizer_dir)
        started = time.perf_counter()
        plan = build_plan(job.data, job.trainer.seed)
        data = build_datasets(job.data, job.trainer, tokenizer_dir, plan)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    stats = data.stats
    records = float(stats.get("train_records", 0)) + float(stats.get("eval_records", 0))
    tokens = float(stats.get("train_tokens", 0)) + float(stats.get("eval_tokens", 0))
    return {
        "single_process": single,
        "ray_data": ray_rate,
        "ray_start_seconds": ray_start,
        "pipeline": {
            "seconds": seconds,
            "cache_hit": bool(stats.get("cache_hit")),
            "stats": {k: v for k, v in stats.items() if isinstance(v, int | float)},
            "records_per_s": records / seconds,
            "tokens_per_s": tokens / seconds,
        },
    }
