"""Ray Data pipeline of a preference job: pairs -> shuffled -> tokens + masks (+ reference logps) -> cache.

Only Ray Data wiring; the transformations are pure functions of ``tuneforge.data.preference``:

1. the driver's ``PreferencePlan`` (every file read and checked once, deduplicated, split by content
   hash) gives the kept records of each split; they become flat rows (``record_to_row``);
2. the train split goes through a seeded ``random_shuffle`` (the training order, as for SFT);
3. ``map_batches`` runs ``encode_preference_batch``: each prompt rendered with the model's chat
   template, chosen and rejected (or, for KTO, the reply and a mismatched reply: the KL rows, TRL's
   rotation within a batch) encoded into fixed-length rows whose labels cover the reply tokens only;
4. where the objective's reference is ``precomputed``, a second ``map_batches`` stage (one actor
   holding the frozen base model) adds each row's reference log-probs (``ref_<side>_logps``), so
   training needs no second model: the log-probs stream with the batch;
5. the rows are written in order into the tokenized-data cache (``data.token_cache``: staged, then
   published with a manifest) under a key of everything that decides them, the base model's
   weights included when reference log-probs are in the rows. A rerun or a sweep reads them back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data

from tuneforge.config import JobConfig
from tuneforge.data import token_cache
from tuneforge.data.preference import (
    PAIRED,
    UNPAIRED,
    PreferenceRecord,
    PreferenceSettings,
    encode_preference_batch,
    record_to_row,
    row_to_record,
)
from tuneforge.data.preference.plan import PreferencePlan
from tuneforge.distributed.data_pipeline import OrderedParquetSink, PreparedData, cache_root, cached_splits
from tuneforge.models.tokenizer import load_tokenizer

PREFERENCE_PIPELINE_VERSION = 2
ENCODE_BATCH = 64


def sides(objective: str) -> tuple[str, ...]:
    """The row prefixes an objective trains on: chosen/rejected pairs, or KTO's reply and KL rows."""
    return ("completion", "kl") if objective == "kto" else ("chosen", "rejected")


def model_columns(job: JobConfig) -> list[str]:
    """The columns the workers read."""
    cols = [
        f"{s}_{c}" for s in sides(job.method.objective) for c in ("input_ids", "labels", "attention_mask")
    ]
    if job.method.objective == "kto":
        cols.append("kto_label")
    if job.method.resolved_reference() == "precomputed":
        cols += [f"ref_{s}_logps" for s in sides(job.method.objective)]
    return cols


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def _encode_batch(batch: Any, *, tokenizer_dir: str, settings: PreferenceSettings) -> dict[str, np.ndarray]:
    rows = batch.to_pylist() if batch.num_rows else []
    return encode_preference_batch([row_to_record(r) for r in rows], _tokenizer(tokenizer_dir), settings)


class ReferenceScorer:
    """A Ray Data actor holding the frozen base model: adds ``ref_<side>_logps`` to every row.

    The base model is what a full or freeze run starts from, so its log-probs are the DPO reference.
    Rows are trimmed to the batch's longest attended length before the forward pass.
    """

    def __init__(self, base_dir: str, model: dict[str, Any], prefixes: tuple[str, ...]) -> None:
        from tuneforge.config.schema import ModelConfig
        from tuneforge.models.factory import load_model

        self.model = load_model(Path(base_dir), ModelConfig.model_validate(model), False).eval()
        self.prefixes = prefixes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for p in self.prefixes:
            self._score(batch, p)
        return batch

    def _score(self, batch: dict[str, np.ndarray], p: str) -> None:
        import torch

        from tuneforge.training.preference_loss import sequence_logps

        with torch.no_grad():  # grad mode is per thread: set here, where the forward runs
            mask = torch.from_numpy(batch[f"{p}_attention_mask"])
            width = max(int(mask.sum(-1).max()) if mask.numel() else 1, 2)
            ids = torch.from_numpy(batch[f"{p}_input_ids"])[:, :width]
            labels = torch.from_numpy(batch[f"{p}_labels"])[:, :width]
            logits = self.model(input_ids=ids, attention_mask=mask[:, :width], use_cache=False).logits
            batch[f"ref_{p}_logps"] = sequence_logps(logits, labels)[0].double().numpy()


def _weights_digest(base_dir: Path) -> str:
    """sha256 over the base model's config and weight files (the reference log-probs depend on them)."""
    from tuneforge.data.files import sha256_file

    h = hashlib.sha256()
    for f in sorted(base_dir.glob("*")):
        if f.suffix == ".safetensors" or f.name == "config.json":
            h.update(f.name.encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def preference_cache_key(job: JobConfig, plan: PreferencePlan, tokenizer_dir: str, base_dir: Path) -> str:
    """Content hash of everything that decides the rows (24 hex characters)."""
    m = job.method
    parts = {
        "pipeline": "preference",
        "version": PREFERENCE_PIPELINE_VERSION,
        "plan": plan.digest(),
        "tokenizer": token_cache.tokenizer_fingerprint(tokenizer_dir),
        "encode": [job.data.template, job.trainer.max_seq_len, job.data.truncation, m.objective == "kto"],
        "seed": job.trainer.seed,
        "reference": _weights_digest(base_dir) if m.resolved_reference() == "precomputed" else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _split(job: JobConfig, records: list[PreferenceRecord], shuffle: bool, tokenizer_dir: str,
           base_dir: Path) -> ray.data.Dataset:  # fmt: skip
    ds: ray.data.Dataset = ray.data.from_items([record_to_row(r) for r in records], override_num_blocks=4)
    if shuffle:
        ds = ds.random_shuffle(seed=job.trainer.seed % 2**32)
    settings = PreferenceSettings(
        job.data.template, job.trainer.max_seq_len, job.data.truncation,
        UNPAIRED if job.method.objective == "kto" else PAIRED,
    )  # fmt: skip
    ds = ds.map_batches(
        partial(_encode_batch, tokenizer_dir=tokenizer_dir, settings=settings),
        batch_size=ENCODE_BATCH,
        batch_format="pyarrow",
    )
    if job.method.resolved_reference() == "precomputed":
        ds = ds.map_batches(
            ReferenceScorer,
            fn_constructor_kwargs={
                "base_dir": str(base_dir),
                "model": job.model.model_dump(mode="json"),
                "prefixes": sides(job.method.objective),
            },  # fmt: skip
            batch_size=16,
            batch_format="numpy",
            concurrency=1,
        )
    return ds


def _count(path: Path, n_records: int) -> tuple[int, int, int]:
    """Rows, dropped records and truncated records of a written split.

    Drops are records in minus rows out (one row per kept record: the plan unpairs KTO's pairs
    before encoding), so a batch that dropped every record, and so wrote no row, is counted too.
    """
    import pyarrow.parquet as pq

    rows = truncated = 0
    for f in sorted(path.glob("*.parquet")):
        table = pq.read_table(f, columns=["n_truncated"])
        rows += table.num_rows
        truncated += int(np.asarray(table.column("n_truncated")).sum())
    return rows, n_records - rows, truncated


def build_preference_datasets(
    job: JobConfig,
    tokenizer_dir: str,
    plan: PreferencePlan,
    base_dir: Path,
    *,
    materialize: bool | None = None,
) -> PreparedData:
    """Encode (and score, for a precomputed reference) both splits through the cache; stream them back."""
    entry = cache_root(job.data) / preference_cache_key(job, plan, tokenizer_dir, base_dir)
    manifest = token_cache.read_manifest(entry) if job.data.cache else None
    hit = manifest is not None
    if manifest is None:
        if job.data.cache:
            token_cache.clear_unfinished(entry)
        elif entry.exists():
            shutil.rmtree(entry)
        stats: dict[str, Any] = {}
        with token_cache.staged(entry) as tmp:
            for name, records in (("train", plan.train), ("eval", plan.eval)):
                ds = _split(job, records, name == "train", tokenizer_dir, base_dir)
                ds.context.execution_options.preserve_order = True
                ds.write_datasink(OrderedParquetSink(str(tmp / name)))
                (tmp / name).mkdir(parents=True, exist_ok=True)
                rows, dropped, truncated = _count(tmp / name, len(records))
                stats.update(
                    {
                        f"{name}_blocks": rows,
                        f"{name}_too_long_dropped": dropped,
                        f"{name}_truncated": truncated,
                    }
                )
            manifest = token_cache.publish(tmp, entry, stats)
    if int(manifest["stats"].get("eval_blocks", 0)) == 0:
        raise ValueError(
            "data: the preference eval split is empty; add data.eval_files or raise data.eval_fraction"
        )
    stats = {**manifest["stats"], **plan.stats(), "cache_hit": int(hit)}
    train, evald = cached_splits(entry, model_columns(job), materialize)
    report = {**plan.summary(), "stats": stats, "cache": str(entry)}
    return PreparedData(train, evald, stats, report, cache_dir=str(entry), cache_hit=hit)
