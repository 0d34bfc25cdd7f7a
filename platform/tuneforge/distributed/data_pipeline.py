"""Ray Data pipeline: files -> chat IR -> dedup/split/mix -> tokens + loss masks -> packed blocks.

The transformations are the pure functions of ``tuneforge.data``; this module only wires them into
Ray Data so the same code runs on a laptop and on a cluster. The driver first builds a
``DataPlan`` (``tuneforge.data.plan``): every file is parsed there (bad input fails fast with one
clear message), exact duplicates are found by content hash, and the weighted mixing factors are
fixed. Ray Data then reads each file in a task (fsspec: local paths, s3://, gs://), re-parses it with
the same functions, drops the planned duplicates, keeps its split, repeats/subsamples train records
by the deterministic ``repeat_count``, tokenizes and packs. ``PreparedData.report`` carries the
per-source numbers (records, duplicates, skipped, shares, sha256) and the skipped-record report for
the driver to log to MLflow.

Training order is decided here, by design: the train split's serialized conversations (after
mixing, one row per copy) go through Ray Data's ``random_shuffle`` with a seed derived from
``trainer.seed`` *before* tokenizing, so every packed block is a random draw from the whole mix and
the first steps of a run see every source in its configured share. The shuffle is an all-to-all
over those rows (serialized JSON, several times smaller than the packed int64 rows it becomes): the
object store holds, or spills to disk, the whole mixed train split once. Writing with
``preserve_order`` makes the cache store that order, so every read of the entry streams the same
rows in the same order. Every packed row also records ``source_tokens``: its trained tokens per
source of its split (not a model column; it lets the order and the shares be measured).

Tokenized output is cached: ``cache_key`` hashes everything that decides the token rows (every input
file's sha256 and format, the plan's dedup/split/mix settings, the tokenizer files, template,
max_seq_len, packing and loss-mask options, and this pipeline's version), the pipeline *writes*
Parquet under ``<cache_dir>/<key>/`` (streaming: blocks go from the tokenize tasks to files without
ever being gathered in one place), and a rerun or a sweep with the same key reads those files
instead of tokenizing again. A cache entry is published by an atomic rename after its manifest is
written, so a crash mid-write leaves no half entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
from ray.data import Datasink

from tuneforge.config import JobConfig
from tuneforge.data import Conversation, FormatSpec, encode_record, pack_examples, pad_examples, parse_bytes
from tuneforge.data.files import read_bytes
from tuneforge.data.mixing import repeat_count, unit_interval
from tuneforge.data.packing import IGNORE_INDEX
from tuneforge.data.plan import DataPlan, keep_record, plan_data
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.tracking.store import tuneforge_home

MODEL_COLUMNS_PACKED = ["input_ids", "labels", "position_ids"]
MODEL_COLUMNS_PADDED = ["input_ids", "labels", "position_ids", "attention_mask"]
#: per packed row, trained tokens (label != -100) from each source of the split (index = source index)
SOURCE_TOKENS = "source_tokens"
_COUNTERS = ("n_docs", "n_dropped", "n_truncated", "n_too_long", "n_chunked")
#: bump when the rows this pipeline writes change for the same inputs (invalidates every cache entry)
PIPELINE_VERSION = 3  # 2: seeded global shuffle, source_tokens; 3: order-keeping Parquet sink


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


def source_rows(
    row: dict[str, Any],
    *,
    target: str,
    drop: frozenset[tuple[str, int, int]],
    factors: dict[int, float],
    eval_fraction: float,
    seed: int,
    has_eval_files: bool,
    on_bad: str,
) -> list[dict[str, Any]]:
    """One source file -> serialized conversations of split ``target`` (pure; runs in a Ray task)."""
    fmt_arg = json.loads(row["fmt"])  # "auto", a format name, or a registry FormatSpec as a dict
    fmt = FormatSpec(**fmt_arg) if isinstance(fmt_arg, dict) else fmt_arg
    parsed = parse_bytes(read_bytes(row["path"]), row["path"], fmt, on_bad=on_bad)
    parsed_source = row["source"]
    out: list[dict[str, Any]] = []
    for ordinal, conv in enumerate(parsed.conversations):
        if (row["split"], row["index"], ordinal) in drop:
            continue
        if keep_record(conv, row["split"], eval_fraction, seed, has_eval_files) != target:
            continue
        copies = 1
        if target == "train":
            copies = repeat_count(conv.content_hash(), row["index"], factors.get(row["index"], 1.0), seed)
        item = {"conv": json.dumps({**conv.to_dict(), "source": parsed_source}), "src": row["index"]}
        out.extend([item] * copies)
    return out


def source_items(plan: DataPlan, group: str) -> list[dict[str, Any]]:
    """One row per input file of ``group`` ("train"/"eval" files) for ``source_rows``.

    ``fmt`` is exactly what the driver parsed the file with, so a task keeps exactly the driver's
    records (the planned drop keys are ordinals of those records).
    """
    items = []
    for sp in plan.sources:
        if sp.split != group:
            continue
        fmt_arg = sp.fmt_arg
        fmt = json.dumps(asdict(fmt_arg) if isinstance(fmt_arg, FormatSpec) else fmt_arg)
        items.append({"split": sp.split, "index": sp.index, "path": sp.path, "source": sp.source, "fmt": fmt})
    return items


def _group(job: JobConfig, target: str) -> str:
    """Which files split ``target`` comes from: eval_files when given (for eval), else train_files."""
    return "eval" if target == "eval" and job.data.eval_files else "train"


def _n_sources(plan: DataPlan, job: JobConfig, target: str) -> int:
    group = _group(job, target)
    return sum(1 for sp in plan.sources if sp.split == group)


def shuffle_seed(seed: int) -> int:
    """The seed of the global train-order shuffle, derived from ``trainer.seed``.

    Hashed so that it is a valid NumPy seed for any configured seed (negative ones too; Ray adds
    the task index to it) and independent of the other uses of the same seed.
    """
    return int(unit_interval(seed, "train-order") * 2**31)


def _split_dataset(plan: DataPlan, job: JobConfig, target: str) -> ray.data.Dataset:
    """The rows of split ``target``: from train_files (hash split) or from eval_files when given."""
    d = job.data
    has_eval = bool(d.eval_files)
    group = _group(job, target)
    items = source_items(plan, group)
    fn = partial(
        source_rows,
        target=target,
        drop=frozenset(plan.drop),
        factors={sp.index: sp.factor for sp in plan.sources if sp.split == "train"},
        eval_fraction=d.eval_fraction,
        seed=job.trainer.seed,
        has_eval_files=has_eval,
        on_bad=d.on_bad_record,
    )
    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(fn)


def train_rows(plan: DataPlan, job: JobConfig) -> ray.data.Dataset:
    """The mixed train split's serialized conversations in training order (a seeded global shuffle).

    Ray's ``random_shuffle`` with an integer seed is deterministic across executions (verified on
    Ray 2.60: same rows, same order; another seed, another order) as long as its input blocks come in
    the same order, which they do: one block per source file, in config order. Each file's rows are
    permuted and cut into one slice per output block, every output block takes one random slice of
    every file and permutes it, so each output block (and so each stretch of the stream) is a
    proportional random sample of the whole mix. ``max_records`` then takes the first rows of that
    order: a quick run trains a sample of the whole mix, not the first file.
    """
    ds = _split_dataset(plan, job, "train").random_shuffle(seed=shuffle_seed(job.trainer.seed))
    return ds.limit(job.data.max_records) if job.data.max_records else ds


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def tokenize_and_block(
    batch: dict[str, np.ndarray],
    *,
    tokenizer: Any,
    template: str,
    max_seq_len: int,
    packing: bool,
    train_on_prompt: bool,
    last_turn_only: bool,
    truncation: str,
    n_sources: int = 1,
) -> dict[str, np.ndarray]:
    """A batch of serialized conversations -> fixed-length model rows (packed or padded) + counters.

    ``batch["src"]`` (optional; 0 when absent) is each record's source index, of ``n_sources``.
    """
    examples: list[dict[str, list[int]]] = []
    example_sources: list[int] = []
    counts = dict.fromkeys(_COUNTERS, 0)
    srcs = batch.get("src")
    for i, raw in enumerate(batch["conv"]):
        result = encode_record(
            Conversation.from_dict(json.loads(raw)),
            tokenizer,
            template,
            max_seq_len,
            train_on_prompt=train_on_prompt,
            truncation=truncation,
            last_turn_only=last_turn_only,
        )
        examples += result.examples
        example_sources += [int(srcs[i]) if srcs is not None else 0] * len(result.examples)
        counts["n_docs"] += 1 if result.examples else 0
        counts["n_dropped"] += 0 if result.examples else 1
        counts["n_truncated"] += result.status == "truncated"
        counts["n_too_long"] += result.status == "dropped_too_long"
        counts["n_chunked"] += result.status == "chunked"
    pad_id = tokenizer.pad_token_id
    rows = (
        pack_examples(examples, max_seq_len, pad_id)
        if packing
        else pad_examples(examples, max_seq_len, pad_id)
    )
    columns = MODEL_COLUMNS_PACKED if packing else MODEL_COLUMNS_PADDED
    out = {
        c: np.asarray([r[c] for r in rows], dtype=np.int64).reshape(len(rows), max_seq_len) for c in columns
    }
    real = [
        sum(1 for t in r["input_ids"] if t != pad_id) if packing else sum(r["attention_mask"]) for r in rows
    ]
    out["n_real"] = np.asarray(real, dtype=np.int64)
    out[SOURCE_TOKENS] = _source_tokens(out["labels"], examples, example_sources, n_sources, packing)
    for name, value in counts.items():  # batch totals ride on the batch's first row
        out[name] = np.zeros(len(rows), dtype=np.int64)
        if rows:
            out[name][0] = value
    return out


def _source_tokens(
    labels: np.ndarray,
    examples: list[dict[str, list[int]]],
    sources: list[int],
    n_sources: int,
    packing: bool,
) -> np.ndarray:
    """Per output row, how many trained tokens (label != -100) came from each source.

    For packed rows the examples are packed a second time with each token replaced by its source
    index (pad -1): ``pack_examples`` places examples by length alone, so that layout is exactly the
    real rows' layout, and the real labels say which of those tokens are trained.
    """
    rows, max_seq_len = labels.shape
    out = np.zeros((rows, max(1, n_sources)), dtype=np.int64)
    if not rows:
        return out
    trained = labels != IGNORE_INDEX
    if packing:
        tagged = [
            {"input_ids": [s] * len(e["input_ids"]), "labels": e["labels"]}
            for e, s in zip(examples, sources, strict=True)
        ]
        marks = np.asarray([b["input_ids"] for b in pack_examples(tagged, max_seq_len, -1)], dtype=np.int64)
    else:
        marks = np.repeat(np.asarray(sources, dtype=np.int64)[:, None], max_seq_len, axis=1)
    if marks.shape != labels.shape:
        raise AssertionError("source layout differs from the packed rows")
    for s in range(out.shape[1]):
        out[:, s] = ((marks == s) & trained).sum(axis=1)
    return out


def _tokenize_batch(
    batch: dict[str, np.ndarray], *, tokenizer_dir: str, **kwargs: Any
) -> dict[str, np.ndarray]:
    return tokenize_and_block(batch, tokenizer=_tokenizer(tokenizer_dir), **kwargs)


def _tokenized(ds: ray.data.Dataset, job: JobConfig, tokenizer_dir: str, n_sources: int) -> ray.data.Dataset:
    d, t = job.data, job.trainer
    return ds.map_batches(
        _tokenize_batch,
        batch_size=256,
        fn_kwargs={
            "tokenizer_dir": tokenizer_dir,
            "template": d.template,
            "max_seq_len": t.max_seq_len,
            "packing": d.packing,
            "train_on_prompt": d.train_on_prompt,
            "last_turn_only": d.last_turn_only,
            "truncation": d.truncation,
            "n_sources": n_sources,
        },
    )


def plan_stats(plan: DataPlan) -> dict[str, Any]:
    """Per-source and whole-input numbers for MLflow params (sha256, format, counts, mix share)."""
    sources = {
        f"{sp.split}{sp.index}": {
            "path": sp.source, "format": sp.format, "sha256": sp.sha256, "records": sp.records,
            "duplicates": sp.duplicates, "near_duplicates": sp.near_duplicates, "skipped": sp.skipped,
            "weight": sp.weight,
            "share": round(sp.share, 6), "mixed_records": sp.mixed_records,
        }
        for sp in plan.sources
    }  # fmt: skip
    return {
        "duplicates_removed": sum(sp.duplicates for sp in plan.sources),
        "near_duplicates_removed": sum(sp.near_duplicates for sp in plan.sources),
        "skipped_records": plan.problems.total,
        "sources": sources,
    }


def build_plan(job: JobConfig) -> DataPlan:
    """The driver-side parse/dedup/mix plan of a job (also what ``validate_and_sample_texts`` uses)."""
    d = job.data
    return plan_data(
        d.train_files,
        d.eval_files,
        eval_fraction=d.eval_fraction,
        seed=job.trainer.seed,
        dedup=d.dedup,
        on_bad=d.on_bad_record,
        near_dedup=d.near_dedup,
    )


def tokenizer_fingerprint(tokenizer_dir: str) -> str:
    """sha256 over the tokenizer's files: a retrained or edited tokenizer gets new cache entries."""
    h = hashlib.sha256()
    for path in sorted(Path(tokenizer_dir).glob("*")):
        if path.is_file() and (
            path.name.startswith(("tokenizer", "special_tokens")) or path.suffix == ".model"
        ):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(job: JobConfig, plan: DataPlan, tokenizer_dir: str) -> str:
    """Content hash of everything that decides the tokenized rows of this job."""
    d, t = job.data, job.trainer
    parts = {
        "version": PIPELINE_VERSION,
        "sources": [
            [sp.split, sp.index, sp.sha256, sp.to_dict()["fmt_arg"], sp.weight, sp.factor]
            for sp in plan.sources
        ],
        "plan": [d.dedup, d.near_dedup, d.eval_fraction, t.seed, d.on_bad_record, d.max_records],
        "drop": hashlib.sha256(repr(sorted(plan.drop)).encode()).hexdigest(),
        "tokenizer": tokenizer_fingerprint(tokenizer_dir),
        "encode": [d.template, t.max_seq_len, d.packing, d.train_on_prompt, d.last_turn_only, d.truncation],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_root(job: JobConfig) -> Path:
    """``data.cache_dir`` or ``<tuneforge home>/cache/tokenized``."""
    return Path(job.data.cache_dir) if job.data.cache_dir else tuneforge_home() / "cache" / "tokenized"


def _split_stats(path: Path, prefix: str, max_seq_len: int) -> dict[str, float]:
    """Block and token counts of one written split, summed from its Parquet files.

    Only the small counter columns are read, one file at a time, with pyarrow on the driver (the
    entry is on a filesystem the driver reads anyway): a Ray Data ``aggregate`` here started hash
    aggregator actors and took 6-10 s per split on a 2-CPU machine, for a handful of integers.
    """
    import pyarrow.parquet as pq

    columns = ("n_real", *_COUNTERS)
    rows, total = 0, dict.fromkeys(columns, 0)
    for file in sorted(path.glob("*.parquet")):
        table = pq.read_table(file, columns=list(columns))
        rows += table.num_rows
        for c in columns:
            total[c] += int(np.asarray(table.column(c)).sum())
    if rows == 0:
        return {f"{prefix}_blocks": 0}
    stats: dict[str, float] = {f"{prefix}_blocks": rows}
    names = ("records", "dropped", "truncated", "too_long_dropped", "chunked")
    for name, column in zip(names, _COUNTERS, strict=True):
        stats[f"{prefix}_{name}"] = total[column]
    stats[f"{prefix}_tokens"] = total["n_real"]
    stats[f"{prefix}_padding_share"] = float(1.0 - total["n_real"] / (rows * max_seq_len))
    return stats


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


def _write_entry(job: JobConfig, plan: DataPlan, tokenizer_dir: str, entry: Path) -> dict[str, Any]:
    """Tokenize both splits straight into Parquet under a temp dir, then publish it atomically."""
    tmp = entry.parent / f".{entry.name}.{uuid.uuid4().hex[:8]}.tmp"
    splits = {"train": train_rows(plan, job), "eval": _split_dataset(plan, job, "eval")}
    stats: dict[str, Any] = {}
    for name, raw in splits.items():
        ds = _tokenized(raw, job, tokenizer_dir, _n_sources(plan, job, name))
        # A Dataset runs with the DataContext copied when its source was created (from_items), so the
        # order is asked for on the dataset itself: blocks keep their order through the shuffle's
        # input, tokenizing and writing, and file names follow block order (OrderedParquetSink). The
        # entry stores the seeded training order, and every ordered read streams it.
        ds.context.execution_options.preserve_order = True
        ds.write_datasink(OrderedParquetSink(str(tmp / name)))
        (tmp / name).mkdir(parents=True, exist_ok=True)  # an empty split writes no file
        stats.update(_split_stats(tmp / name, name, job.trainer.max_seq_len))
    manifest = {"key": entry.name, "stats": stats, "version": PIPELINE_VERSION}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    try:
        os.replace(tmp, entry)  # atomic publish; a concurrent writer of the same key may win the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads((entry / "manifest.json").read_text())


def _read_split(path: Path) -> ray.data.Dataset:
    files = sorted(str(f) for f in path.glob("*.parquet"))
    if not files:
        return ray.data.from_items([])
    return ray.data.read_parquet(files, override_num_blocks=max(1, len(files)))


def build_datasets(
    job: JobConfig, tokenizer_dir: str, plan: DataPlan | None = None, *, materialize: bool = False
) -> PreparedData:
    """Read, dedup, split, mix, tokenize and block the job's data with Ray Data, through the cache.

    The returned datasets stream from the cache's Parquet files (``materialize=True`` pins them in
    the object store, which a sweep needs: its trials must not launch Ray Data tasks themselves).
    The split is by content hash, so it does not depend on file order.
    """
    d = job.data
    plan = plan or build_plan(job)
    root = cache_root(job)
    entry = root / cache_key(job, plan, tokenizer_dir)
    hit = d.cache and (entry / "manifest.json").exists()
    if hit:
        manifest = json.loads((entry / "manifest.json").read_text())
    else:
        root.mkdir(parents=True, exist_ok=True)
        if entry.exists():
            shutil.rmtree(entry)  # no manifest: an unfinished entry from an older, crashed writer
        manifest = _write_entry(job, plan, tokenizer_dir, entry)
    stats: dict[str, Any] = {**manifest["stats"], **plan_stats(plan), "cache_hit": int(bool(hit))}
    columns = MODEL_COLUMNS_PACKED if d.packing else MODEL_COLUMNS_PADDED
    report = {
        **plan.summary(),
        "stats": {k: v for k, v in stats.items() if k != "sources"},
        "cache": str(entry),
    }
    train, evald = (_read_split(entry / name).select_columns(columns) for name in ("train", "eval"))
    if materialize:
        train, evald = train.materialize(), evald.materialize()
    return PreparedData(train, evald, stats, report, cache_dir=str(entry), cache_hit=bool(hit))
