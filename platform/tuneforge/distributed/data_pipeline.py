"""Ray Data pipeline: files -> record rows -> (shuffled) -> tokens + loss masks -> packed blocks -> cache.

About 300 lines on purpose: half of it is this docstring (the pipeline's order and cache rules),
the rest is one Ray Data graph that reads best in one place.

This module is only the Ray Data wiring; every transformation is a pure function of
``tuneforge.data``, so the same code runs on a laptop and on a cluster:

- ``data/plan.py``: the driver's ``DataPlan``. Every file is streamed once there (bad input fails fast
  with one clear message), exact duplicates are found by content hash, the weighted mixing factors
  are fixed, and each file's sha256 is taken: the file's one digest for the rest of the run.
- ``data/record_rows.py``: one row per input file (``file_items``) and, in a ``flat_map`` task per
  file, the record rows of one split (``file_rows``: read with fsspec, re-parsed with the same
  functions, planned duplicates dropped, the content-hash split kept, train records repeated or
  subsampled by the deterministic ``repeat_count``). Record rows are flat Arrow-friendly columns
  (roles, contents, train flags, tool use as JSON only when present), not a serialized IR.
- ``data/tokenize_blocks.py``: ``map_batches`` over those rows: template + loss mask + tokenize +
  pack (or pad), with per-batch counters and per-row ``source_tokens``.
- ``data/token_cache.py``: the cache key, the manifest and the atomic publish of an entry.

Training order is decided here, by design: the train split's record rows (after mixing, one row
per copy) go through Ray Data's ``random_shuffle`` with a seed derived from ``trainer.seed``
(``shuffle_seed``) *before* tokenizing, so every packed block is a random draw from the whole mix
and the first steps of a run see every source in its configured share. The shuffle is an all-to-all
over those rows (strings and small integer lists, several times smaller than the packed int64 rows
they become): the object store holds, or spills to disk, the whole mixed train split once. Writing
with ``preserve_order`` makes the cache store that order, so every read of the entry streams the
same rows in the same order. Every packed row also records ``source_tokens``: its trained tokens per
source of its split (not a model column; it lets the order and the shares be measured).

Tokenized output is cached: the pipeline *writes* Parquet under ``<cache_dir>/<key>/`` (streaming:
blocks go from the tokenize tasks to files without ever being gathered in one place), and a rerun or
a sweep with the same key reads those files instead of tokenizing again. ``PreparedData.report``
carries the per-source numbers (records, duplicates, skipped, shares, sha256) and the skipped-record
report for the driver to log to MLflow.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
from ray.data import Datasink

from tuneforge.config import DataConfig, TrainerConfig
from tuneforge.data import token_cache
from tuneforge.data.plan import DataPlan, RecordVisitor, plan_data, plan_stats
from tuneforge.data.record_rows import (
    ROW_COLUMNS,
    SplitRules,
    file_items,
    file_rows,
    row_conversations,
    shuffle_seed,
)
from tuneforge.data.token_cache import PIPELINE_VERSION, PlanSettings
from tuneforge.data.tokenize_blocks import (
    MODEL_COLUMNS_PACKED,
    MODEL_COLUMNS_PADDED,
    SOURCE_TOKENS,
    EncodeSettings,
    tokenize_and_block,
)
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.paths import tuneforge_home


@dataclass
class PreparedData:
    """Materialised, tokenized datasets plus the statistics the run logs.

    ``stats`` is flat (numbers, plus per-source path/format/sha256 under ``sources``) and goes to
    MLflow params; ``report`` (per-source numbers and skipped-record examples) goes to an artifact.
    """

    train: ray.data.Dataset
    eval: ray.data.Dataset
    stats: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    cache_hit: bool = False


# -- the job's settings, as the pure code takes them -----------------------------------------------------


def plan_settings(data: DataConfig, trainer: TrainerConfig) -> PlanSettings:
    return PlanSettings(
        data.dedup, data.near_dedup, data.eval_fraction, trainer.seed, data.on_bad_record, data.max_records
    )


def encode_settings(data: DataConfig, trainer: TrainerConfig) -> EncodeSettings:
    d = data
    return EncodeSettings(
        d.template, trainer.max_seq_len, d.packing, d.train_on_prompt, d.last_turn_only, d.truncation
    )


def build_plan(d: DataConfig, seed: int, visitors: Sequence[RecordVisitor] = ()) -> DataPlan:
    """The driver-side parse/dedup/mix plan of a data section; ``visitors`` ride on its single pass."""
    return plan_data(
        d.train_files,
        d.eval_files,
        eval_fraction=d.eval_fraction,
        seed=seed,
        dedup=d.dedup,
        on_bad=d.on_bad_record,
        near_dedup=d.near_dedup,
        visitors=visitors,
    )


def cache_key(data: DataConfig, trainer: TrainerConfig, plan: DataPlan, tokenizer_dir: str) -> str:
    """Content hash of everything that decides the tokenized rows of a job with these sections."""
    return token_cache.cache_key(
        plan, tokenizer_dir, plan_settings(data, trainer), encode_settings(data, trainer)
    )


def cache_root(data: DataConfig) -> Path:
    """``data.cache_dir`` or ``<tuneforge home>/cache/tokenized``."""
    return Path(data.cache_dir) if data.cache_dir else tuneforge_home() / "cache" / "tokenized"


# -- Ray Data --------------------------------------------------------------------------------------------


def _group(data: DataConfig, target: str) -> str:
    """Which files split ``target`` comes from: eval_files when given (for eval), else train_files."""
    return "eval" if target == "eval" and data.eval_files else "train"


def _n_sources(plan: DataPlan, data: DataConfig, target: str) -> int:
    group = _group(data, target)
    return sum(1 for sp in plan.sources if sp.split == group)


def _split_dataset(plan: DataPlan, data: DataConfig, seed: int, target: str) -> ray.data.Dataset:
    """The record rows of split ``target``: from train_files (hash split) or from eval_files when given."""
    items = file_items(plan, _group(data, target))
    rules = SplitRules.of(
        plan,
        target,
        eval_fraction=data.eval_fraction,
        seed=seed,
        has_eval_files=bool(data.eval_files),
        on_bad=data.on_bad_record,
    )
    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(
        partial(file_rows, rules=rules)
    )


def train_rows(plan: DataPlan, data: DataConfig, trainer: TrainerConfig) -> ray.data.Dataset:
    """The mixed train split's record rows in training order (a seeded global shuffle).

    Ray's ``random_shuffle`` with an integer seed is deterministic across executions (verified on
    Ray 2.60: same rows, same order; another seed, another order) as long as its input blocks come in
    the same order, which they do: one block per source file, in config order. Each file's rows are
    permuted and cut into one slice per output block, every output block takes one random slice of
    every file and permutes it, so each output block (and so each stretch of the stream) is a
    proportional random sample of the whole mix. ``max_records`` then takes the first rows of that
    order: a quick run trains a sample of the whole mix, not the first file.
    """
    ds = _split_dataset(plan, data, trainer.seed, "train").random_shuffle(seed=shuffle_seed(trainer.seed))
    return ds.limit(data.max_records) if data.max_records else ds


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def _tokenize_batch(
    batch: Any, *, tokenizer_dir: str, settings: EncodeSettings, n_sources: int
) -> dict[str, np.ndarray]:
    """One ``pyarrow`` batch of record rows -> model rows (the columns become plain Python values)."""
    if batch.num_rows == 0:
        convs, sources = [], []
    else:
        columns = {c: batch.column(c).to_pylist() for c in ROW_COLUMNS}
        convs, sources = row_conversations(columns), columns["src"]
    return tokenize_and_block(
        convs, sources, tokenizer=_tokenizer(tokenizer_dir), settings=settings, n_sources=n_sources
    )


def _tokenized(
    ds: ray.data.Dataset, settings: EncodeSettings, tokenizer_dir: str, n_sources: int
) -> ray.data.Dataset:
    return ds.map_batches(
        _tokenize_batch,  # type: ignore[arg-type]  # Ray types fn as one-argument; fn_kwargs fills the rest
        batch_size=256,
        batch_format="pyarrow",
        fn_kwargs={"tokenizer_dir": tokenizer_dir, "settings": settings, "n_sources": n_sources},
    )


class OrderedParquetSink(Datasink[None]):
    """Parquet files that keep the dataset's row order: one file per write task, named by task index.

    Ray's own ``write_parquet`` cannot store an order: its sink writes a task's blocks with
    ``pyarrow.dataset.write_dataset(use_threads=True)`` and no ``preserve_order``, which may reorder
    the row groups inside a file (measured on Ray 2.60: about one build in five rotated the three
    row groups of one file). Here each task writes its blocks one after another with a
    ``ParquetWriter``; with ``preserve_order`` the task indices follow block order, so sorted file
    names plus in-file order are the dataset's order. ``path`` must be reachable from every worker.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_write_start(self, schema: Any = None) -> None:
        Path(self.path).mkdir(parents=True, exist_ok=True)

    def write(self, blocks: Any, ctx: Any) -> None:
        import pyarrow.parquet as pq
        from ray.data.block import BlockAccessor

        tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return
        Path(self.path).mkdir(parents=True, exist_ok=True)
        schema = tables[0].schema
        with pq.ParquetWriter(str(Path(self.path) / f"part-{ctx.task_idx:06d}.parquet"), schema) as writer:
            for table in tables:
                writer.write_table(table if table.schema.equals(schema) else table.cast(schema))


def _write_entry(
    data: DataConfig, trainer: TrainerConfig, plan: DataPlan, tokenizer_dir: str, entry: Path
) -> dict[str, Any]:
    """Tokenize both splits straight into Parquet under a temp dir, then publish it atomically."""
    splits = {
        "train": train_rows(plan, data, trainer),
        "eval": _split_dataset(plan, data, trainer.seed, "eval"),
    }
    settings = encode_settings(data, trainer)
    stats: dict[str, Any] = {}
    with token_cache.staged(entry) as tmp:
        for name, raw in splits.items():
            ds = _tokenized(raw, settings, tokenizer_dir, _n_sources(plan, data, name))
            # A Dataset runs with the DataContext copied when its source was created (from_items), so
            # the order is asked for on the dataset itself: blocks keep their order through the
            # shuffle's input, tokenizing and writing, and file names follow block order
            # (OrderedParquetSink). The entry stores the seeded training order; ordered reads stream it.
            ds.context.execution_options.preserve_order = True
            ds.write_datasink(OrderedParquetSink(str(tmp / name)))
            (tmp / name).mkdir(parents=True, exist_ok=True)  # an empty split writes no file
            stats.update(token_cache.split_stats(tmp / name, name, trainer.max_seq_len))
        return token_cache.publish(tmp, entry, stats)


#: Tokenized splits up to this size (uncompressed, per their Parquet metadata) are pinned in the object
#: store: every epoch then iterates blocks already in memory. Streamed from Parquet instead, each epoch
#: starts a fresh Ray Data execution (read tasks, worker processes), which stalled a small demo's
#: training for several seconds at every epoch boundary (docs/performance.md).
MATERIALIZE_MAX_BYTES = 256 * 2**20


def split_bytes(path: Path) -> int:
    """Uncompressed bytes of a cached split's Parquet files (from their metadata, nothing read)."""
    import pyarrow.parquet as pq

    total = 0
    for f in path.glob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _pinned(ds: ray.data.Dataset) -> ray.data.Dataset:
    """``ds`` materialized in the cache's order (the order a resumed run replays)."""
    ds.context.execution_options.preserve_order = True
    return ds.materialize()


def _read_split(path: Path) -> ray.data.Dataset:
    files = sorted(str(f) for f in path.glob("*.parquet"))
    if not files:
        return ray.data.from_items([])
    return ray.data.read_parquet(files, override_num_blocks=max(1, len(files)))


def cached_splits(
    entry: Path, columns: Sequence[str], materialize: bool | None
) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """A cache entry's train and eval splits (``columns`` only), for SFT and preference entries alike.

    ``materialize=True`` pins them in the object store, ``False`` streams them from the Parquet files,
    ``None`` pins them when they are small (``MATERIALIZE_MAX_BYTES``).
    """
    names = ("train", "eval")
    train, evald = (_read_split(entry / name).select_columns(list(columns)) for name in names)
    if materialize is None:
        materialize = sum(split_bytes(entry / name) for name in names) <= MATERIALIZE_MAX_BYTES
    if materialize:
        train, evald = _pinned(train), _pinned(evald)
    return train, evald


def build_datasets(
    d: DataConfig,
    trainer: TrainerConfig,
    tokenizer_dir: str,
    plan: DataPlan,
    *,
    materialize: bool | None = None,
) -> PreparedData:
    """Read, dedup, split, mix, tokenize and block the job's data with Ray Data, through the cache.

    The returned datasets stream from the cache's Parquet files (``materialize=True`` pins them in
    the object store, which a sweep needs: its trials must not launch Ray Data tasks themselves;
    ``None`` pins them when they are small, ``MATERIALIZE_MAX_BYTES``).
    The split is by content hash, so it does not depend on file order. ``plan`` is the run's data
    plan (``build_plan``): the one read of the input files.
    """
    entry = cache_root(d) / cache_key(d, trainer, plan, tokenizer_dir)
    manifest = token_cache.read_manifest(entry) if d.cache else None
    hit = manifest is not None
    if manifest is None:
        if d.cache:
            token_cache.clear_unfinished(entry)  # no valid manifest: an unfinished or foreign entry
        elif entry.exists():
            shutil.rmtree(entry)  # cache off: always tokenize afresh
        manifest = _write_entry(d, trainer, plan, tokenizer_dir, entry)
    stats: dict[str, Any] = {**manifest["stats"], **plan_stats(plan), "cache_hit": int(hit)}
    columns = MODEL_COLUMNS_PACKED if d.packing else MODEL_COLUMNS_PADDED
    report = {
        **plan.summary(),
        "stats": {k: v for k, v in stats.items() if k != "sources"},
        "cache": str(entry),
    }
    train, evald = cached_splits(entry, columns, materialize)
    return PreparedData(train, evald, stats, report, cache_dir=str(entry), cache_hit=hit)


__all__ = [
    "MATERIALIZE_MAX_BYTES",
    "MODEL_COLUMNS_PACKED",
    "MODEL_COLUMNS_PADDED",
    "PIPELINE_VERSION",
    "SOURCE_TOKENS",
    "OrderedParquetSink",
    "PreparedData",
    "build_datasets",
    "build_plan",
    "cache_key",
    "cached_splits",
    "cache_root",
    "encode_settings",
    "plan_settings",
    "split_bytes",
    "train_rows",
]
