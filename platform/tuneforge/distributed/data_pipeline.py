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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np
import ray
import ray.data

from tuneforge.config import JobConfig
from tuneforge.data import Conversation, FormatSpec, encode_record, pack_examples, pad_examples, parse_bytes
from tuneforge.data.files import read_bytes
from tuneforge.data.mixing import repeat_count
from tuneforge.data.plan import DataPlan, keep_record, plan_data
from tuneforge.models.tokenizer import load_tokenizer

MODEL_COLUMNS_PACKED = ["input_ids", "labels", "position_ids"]
MODEL_COLUMNS_PADDED = ["input_ids", "labels", "position_ids", "attention_mask"]
_COUNTERS = ("n_docs", "n_dropped", "n_truncated", "n_too_long", "n_chunked")


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
        item = {"conv": json.dumps({**conv.to_dict(), "source": parsed_source})}
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
        fmt_arg = plan.parsed[(sp.split, sp.index)].fmt_arg
        fmt = json.dumps(asdict(fmt_arg) if isinstance(fmt_arg, FormatSpec) else fmt_arg)
        items.append({"split": sp.split, "index": sp.index, "path": sp.path, "source": sp.source, "fmt": fmt})
    return items


def _split_dataset(plan: DataPlan, job: JobConfig, target: str) -> ray.data.Dataset:
    """The rows of split ``target``: from train_files (hash split) or from eval_files when given."""
    d = job.data
    has_eval = bool(d.eval_files)
    group = "eval" if target == "eval" and has_eval else "train"
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
) -> dict[str, np.ndarray]:
    """A batch of serialized conversations -> fixed-length model rows (packed or padded) + counters."""
    examples = []
    counts = dict.fromkeys(_COUNTERS, 0)
    for raw in batch["conv"]:
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
    for name, value in counts.items():  # batch totals ride on the batch's first row
        out[name] = np.zeros(len(rows), dtype=np.int64)
        if rows:
            out[name][0] = value
    return out


def _tokenize_batch(
    batch: dict[str, np.ndarray], *, tokenizer_dir: str, **kwargs: Any
) -> dict[str, np.ndarray]:
    return tokenize_and_block(batch, tokenizer=_tokenizer(tokenizer_dir), **kwargs)


def _tokenized(ds: ray.data.Dataset, job: JobConfig, tokenizer_dir: str) -> ray.data.Dataset:
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
        },
    ).materialize()


def _stats(ds: ray.data.Dataset, prefix: str, max_seq_len: int) -> dict[str, float]:
    rows = ds.count()
    if rows == 0:
        return {f"{prefix}_blocks": 0}
    real = int(ds.sum("n_real"))
    stats: dict[str, float] = {f"{prefix}_blocks": int(rows)}
    for name, column in (
        ("records", "n_docs"),
        ("dropped", "n_dropped"),
        ("truncated", "n_truncated"),
        ("too_long_dropped", "n_too_long"),
        ("chunked", "n_chunked"),
    ):
        stats[f"{prefix}_{name}"] = int(ds.sum(column))
    stats[f"{prefix}_tokens"] = real
    stats[f"{prefix}_padding_share"] = float(1.0 - real / (rows * max_seq_len))
    return stats


def plan_stats(plan: DataPlan) -> dict[str, Any]:
    """Per-source and whole-input numbers for MLflow params (sha256, format, counts, mix share)."""
    sources = {
        f"{sp.split}{sp.index}": {
            "path": sp.source, "format": sp.format, "sha256": sp.sha256, "records": sp.records,
            "duplicates": sp.duplicates, "skipped": sp.skipped, "weight": sp.weight,
            "share": round(sp.share, 6), "mixed_records": sp.mixed_records,
        }
        for sp in plan.sources
    }  # fmt: skip
    return {
        "duplicates_removed": sum(sp.duplicates for sp in plan.sources),
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
    )


def build_datasets(job: JobConfig, tokenizer_dir: str, plan: DataPlan | None = None) -> PreparedData:
    """Read, dedup, split, mix, tokenize and block the job's data with Ray Data; materialise both splits.

    Materialising once means training workers never wait on tokenization and later sweeps can
    share the result; the split is by content hash, so it does not depend on file order.
    """
    d = job.data
    plan = plan or build_plan(job)
    train_raw = _split_dataset(plan, job, "train")
    eval_raw = _split_dataset(plan, job, "eval")
    if d.max_records:
        train_raw = train_raw.limit(d.max_records)
    train = _tokenized(train_raw, job, tokenizer_dir)
    evald = _tokenized(eval_raw, job, tokenizer_dir)
    stats: dict[str, Any] = {
        **_stats(train, "train", job.trainer.max_seq_len),
        **_stats(evald, "eval", job.trainer.max_seq_len),
        **plan_stats(plan),
    }
    columns = MODEL_COLUMNS_PACKED if d.packing else MODEL_COLUMNS_PADDED
    report = {**plan.summary(), "stats": {k: v for k, v in stats.items() if k != "sources"}}
    return PreparedData(train.select_columns(columns), evald.select_columns(columns), stats, report)
