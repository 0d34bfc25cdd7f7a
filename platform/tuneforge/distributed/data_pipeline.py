"""Ray Data pipeline: files -> chat IR -> tokens + loss masks -> packed blocks, per split.

The transformations are the pure functions of ``tuneforge.data``; this module only wires them into
Ray Data (``read_binary_files`` -> ``flat_map`` -> ``map_batches``) so the same code runs on a
laptop and on a cluster. Files are validated on the driver first, so bad input fails fast with
one clear message instead of a traceback from inside a Ray task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import ray
import ray.data

from tuneforge.config import DatasetSpec, JobConfig
from tuneforge.data import (
    Conversation,
    conversations_from_bytes,
    encode_conversation,
    is_eval,
    pack_examples,
    pad_examples,
)
from tuneforge.models.tokenizer import load_tokenizer

MODEL_COLUMNS_PACKED = ["input_ids", "labels", "position_ids"]
MODEL_COLUMNS_PADDED = ["input_ids", "labels", "position_ids", "attention_mask"]


@dataclass
class PreparedData:
    """Materialised, tokenized datasets plus the statistics the run logs."""

    train: ray.data.Dataset
    eval: ray.data.Dataset
    stats: dict[str, float]


def _records(spec: DatasetSpec, split: str, eval_fraction: float, seed: int) -> ray.data.Dataset:
    """One file -> rows of serialized conversations, filtered to ``split`` ("train"/"eval"/"all")."""

    def parse(row: dict[str, Any]) -> list[dict[str, Any]]:
        convs = conversations_from_bytes(row["bytes"], row["path"], spec.format)
        keep = [c for c in convs if split == "all" or is_eval(c, eval_fraction, seed) == (split == "eval")]
        return [{"conv": json.dumps(c.to_dict())} for c in keep]

    ds = ray.data.read_binary_files(spec.path, include_paths=True)
    return ds.flat_map(parse)


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def _tokenize_and_block(
    batch: dict[str, np.ndarray],
    *,
    tokenizer_dir: str,
    template: str,
    max_seq_len: int,
    packing: bool,
    train_on_prompt: bool,
    truncation: str,
) -> dict[str, np.ndarray]:
    """A batch of serialized conversations -> fixed-length model rows (packed or padded)."""
    tok = _tokenizer(tokenizer_dir)
    examples = []
    for raw in batch["conv"]:
        enc = encode_conversation(
            Conversation.from_dict(json.loads(raw)),
            tok,
            template=template,
            max_seq_len=max_seq_len,
            train_on_prompt=train_on_prompt,
            truncation=truncation,
        )
        if enc is not None:
            examples.append(enc)
    pad_id = tok.pad_token_id
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
    out["n_docs"] = np.full(len(rows), 0, dtype=np.int64)
    if rows:
        out["n_docs"][0] = len(examples)
        out["n_dropped"] = np.zeros(len(rows), dtype=np.int64)
        out["n_dropped"][0] = len(batch["conv"]) - len(examples)
    else:
        out["n_dropped"] = np.zeros(0, dtype=np.int64)
    return out


def _tokenized(ds: ray.data.Dataset, job: JobConfig, tokenizer_dir: str) -> ray.data.Dataset:
    d, t = job.data, job.trainer
    return ds.map_batches(
        _tokenize_and_block,
        batch_size=256,
        fn_kwargs={
            "tokenizer_dir": tokenizer_dir,
            "template": d.template,
            "max_seq_len": t.max_seq_len,
            "packing": d.packing,
            "train_on_prompt": d.train_on_prompt,
            "truncation": d.truncation,
        },
    ).materialize()


def _stats(ds: ray.data.Dataset, prefix: str, max_seq_len: int) -> dict[str, float]:
    rows = ds.count()
    if rows == 0:
        return {f"{prefix}_blocks": 0}
    real = ds.sum("n_real")
    return {
        f"{prefix}_blocks": rows,
        f"{prefix}_records": ds.sum("n_docs"),
        f"{prefix}_dropped": ds.sum("n_dropped"),
        f"{prefix}_tokens": real,
        f"{prefix}_padding_share": 1.0 - real / (rows * max_seq_len),
    }


def build_datasets(job: JobConfig, tokenizer_dir: str) -> PreparedData:
    """Read, split, tokenize and block the job's data with Ray Data; materialise both splits.

    Materialising once means training workers never wait on tokenization and later sweeps can
    share the result; the split is by content hash, so it does not depend on file order.
    """
    d = job.data
    seed = job.trainer.seed
    if d.eval_files:
        train_parts = [_records(s, "all", 0.0, seed) for s in d.train_files]
        eval_parts = [_records(s, "all", 0.0, seed) for s in d.eval_files]
    else:
        train_parts = [_records(s, "train", d.eval_fraction, seed) for s in d.train_files]
        eval_parts = [_records(s, "eval", d.eval_fraction, seed) for s in d.train_files]
    train_raw = train_parts[0].union(*train_parts[1:]) if len(train_parts) > 1 else train_parts[0]
    eval_raw = eval_parts[0].union(*eval_parts[1:]) if len(eval_parts) > 1 else eval_parts[0]
    if d.max_records:
        train_raw = train_raw.limit(d.max_records)
    train = _tokenized(train_raw, job, tokenizer_dir)
    evald = _tokenized(eval_raw, job, tokenizer_dir)
    stats = {
        **_stats(train, "train", job.trainer.max_seq_len),
        **_stats(evald, "eval", job.trainer.max_seq_len),
    }
    columns = MODEL_COLUMNS_PACKED if d.packing else MODEL_COLUMNS_PADDED
    return PreparedData(train.select_columns(columns), evald.select_columns(columns), stats)
