"""Training order of a weighted mix on a real Ray head: a seeded global shuffle, interleaved by design.

Six OpenAI-chat sources, one large (2,400 records) and five small (100-300), weighted 3:1:1:2:1:2.
What the config means by a share (``data/mixing.py``, ``data/plan.py``): ``weight`` values are
relative shares of the train mix **in records**: source ``i`` gets ``N * w_i / sum(w)`` of the
``N`` train records (repeated or subsampled by a seeded per-record draw), and the plan's
``SourcePlan.share`` is the exact record share that draw produced. Every record here has the same
trained part (ten words from one shared list, each one token of the tokenizer trained on this data,
plus the end-of-turn marker; the record's number sits in the untrained user turn), so a source's
share of trained tokens equals its share of records, and the test compares token shares, measured
with the ``source_tokens`` column, to the plan's record shares.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from tuneforge.config import config_from_dict, load_config
from tuneforge.distributed.cluster import ensure_ray
from tuneforge.distributed.data_pipeline import (
    SOURCE_TOKENS,
    build_datasets,
    build_plan,
    train_rows,
)
from tuneforge.models.base import prepare_base

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SIZES = [2400, 100, 150, 200, 250, 300]
WEIGHTS = [3.0, 1.0, 1.0, 2.0, 1.0, 2.0]
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu red green blue black"
).split()


def _write_sources(root: Path) -> list[str]:
    paths = []
    for s, n in enumerate([*SIZES, 40]):  # the last file is the eval file
        path = root / f"source{s}.jsonl"
        with path.open("w") as f:
            for k in range(n):
                answer = " ".join(WORDS[(k * (s + 3) + 7 * j + s) % len(WORDS)] for j in range(10))
                record = {
                    "messages": [
                        {"role": "user", "content": f"question {k} about topic {s}"},
                        {"role": "assistant", "content": answer},
                    ]
                }
                f.write(json.dumps(record) + "\n")
        paths.append(str(path))
    return paths


def _job(paths: list[str], cache_dir: Path, seed: int, weights: list[float] | None = WEIGHTS):
    raw = load_config(REPO / "jobs/configs/finetune/tiny_cpu.yaml").model_dump(mode="json")
    raw["data"].update(
        train_files=[
            {"path": p, "weight": None if weights is None else w}
            for p, w in zip(paths[:-1], WEIGHTS, strict=True)
        ],
        eval_files=[paths[-1]],  # a fixed eval file: the seed then changes only the mix draw and the order
        cache_dir=str(cache_dir),
    )
    raw["trainer"]["seed"] = seed
    return config_from_dict(raw)


def _in_order(ds: ray.data.Dataset) -> ray.data.Dataset:
    """What Train's ``DataConfig(preserve_order=True)`` does to a dataset before streaming it."""
    ds.context.execution_options.preserve_order = True
    return ds


def _column(table: pa.Table, name: str) -> np.ndarray:
    arr = table.column(name).combine_chunks()
    return np.asarray((arr.storage if isinstance(arr, pa.ExtensionArray) else arr).to_pylist())


def _file_order(prepared) -> tuple[list[bytes], np.ndarray]:
    """The entry's train rows in file order, with their ``source_tokens`` (pyarrow: no Ray job)."""
    files = sorted((Path(prepared.cache_dir) / "train").glob("*.parquet"))
    table = pa.concat_tables(
        [pq.read_table(f, columns=["input_ids", "labels", SOURCE_TOKENS]) for f in files]
    )
    ids, labels, tokens = (_column(table, c) for c in ("input_ids", "labels", SOURCE_TOKENS))
    # every trained token of a row is counted for exactly one source
    assert (tokens.sum(axis=1) == (labels != -100).sum(axis=1)).all()
    return [row.tobytes() for row in ids], tokens


def test_weighted_mix_is_interleaved_by_a_seeded_shuffle(ray_head, tmp_path: Path):
    """Over the first 10% of train rows in stream order (what a 1-worker run trains first), each
    source's share of trained tokens is within 5 points of its configured share (the plan's record
    share, ~weight / sum of weights; see the module docstring); the order is the same for two
    builds with the same seed (a cache hit and a fresh cache dir) and differs for another seed."""
    paths = _write_sources(tmp_path)
    job = _job(paths, tmp_path / "cache_a", seed=42)
    ensure_ray(job)
    plan = build_plan(job.data, job.trainer.seed)
    base = prepare_base(job.model, plan.sample_texts(job.data.template), tmp_path / "base", job.trainer.seed)
    configured = np.asarray([sp.share for sp in plan.sources if sp.split == "train"])
    assert np.allclose(configured, np.asarray(WEIGHTS) / sum(WEIGHTS), atol=0.01)

    first = build_datasets(job.data, job.trainer, str(base), plan)
    ids, tokens = _file_order(first)
    streamed = [r["input_ids"].tobytes() for r in _in_order(first.train).iter_rows()]
    assert streamed == ids  # what Train streams with preserve_order is the entry's file order
    head = tokens[: len(tokens) // 10].sum(axis=0)
    head_share, all_share = head / head.sum(), tokens.sum(axis=0) / tokens.sum()
    print(f"rows={len(ids)} configured={configured.round(3)} first10%={head_share.round(3)}")
    assert np.abs(all_share - configured).max() < 0.01  # equal-length answers: token share = record share
    assert np.abs(head_share - configured).max() <= 0.05

    hit = build_datasets(
        job.data, job.trainer, str(base), build_plan(job.data, job.trainer.seed)
    )  # the same entry read again: same order
    assert hit.cache_hit and _file_order(hit)[0] == ids
    for i in range(3):  # fresh builds, same seed: Ray's own Parquet writer rotated row groups ~1 in 5
        job_a = _job(paths, tmp_path / f"cache_a{i + 2}", seed=42)
        again = build_datasets(
            job_a.data, job_a.trainer, str(base), build_plan(job_a.data, job_a.trainer.seed)
        )
        assert not again.cache_hit and again.cache_dir != first.cache_dir  # same seed, built afresh
        assert _file_order(again)[0] == ids, f"fresh build {i + 2} stored another order"

    job_b = _job(paths, tmp_path / "cache_b", seed=7)
    other = build_datasets(job_b.data, job_b.trainer, str(base), build_plan(job_b.data, job_b.trainer.seed))
    other_ids, other_tokens = _file_order(other)
    assert other_ids != ids
    other_head = other_tokens[: len(other_tokens) // 10].sum(axis=0)
    other_head_share = other_head / other_head.sum()
    other_configured = np.asarray(
        [sp.share for sp in build_plan(job_b.data, job_b.trainer.seed).sources if sp.split == "train"]
    )
    print(f"seed 7: configured={other_configured.round(3)} first10%={other_head_share.round(3)}")
    assert np.abs(other_head_share - other_configured).max() <= 0.05


def test_seed_changes_the_order_not_the_rows(ray_head, tmp_path: Path):
    """Unweighted (every factor 1) with a fixed eval file: the train rows do not depend on the seed,
    so a difference between seeds is the shuffle's alone."""
    paths = _write_sources(tmp_path)

    def convs(seed: int) -> list[tuple]:
        job = _job(paths, tmp_path / "cache", seed=seed, weights=None)
        ensure_ray(job)
        rows = _in_order(
            train_rows(build_plan(job.data, job.trainer.seed), job.data, job.trainer)
        ).iter_rows()
        return [(r["src"], *r["contents"]) for r in rows]  # record rows: source index + message contents

    a, b, c = convs(42), convs(42), convs(7)
    assert a == b and sorted(a) == sorted(c) and a != c
    assert len(a) == sum(SIZES)
    sources = [x[0] for x in a[: len(a) // 10]]
    assert len(set(sources)) == len(SIZES)  # the head of the stream already holds every source
