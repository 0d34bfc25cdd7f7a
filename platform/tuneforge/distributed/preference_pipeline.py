"""Ray Data pipeline of a preference job: pairs -> shuffled -> tokens + masks (+ reference logps) -> cache.

Only Ray Data wiring; the transformations are pure functions of ``tuneforge.data.preference``:

1. the driver's ``PreferencePlan`` (every file read and checked once, deduplicated, split by content
   hash) gives the kept records of each split; they become flat rows (``record_to_row``);
2. the train split goes through a seeded ``random_shuffle`` (the training order, as for SFT);
3. ``map_batches`` renders each prompt with the model's chat template and encodes chosen and
   rejected (or, for KTO, the reply and a mismatched reply: the KL rows, TRL's rotation within a
   batch) into fixed-length rows whose labels cover the reply tokens only;
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
    PreferenceRecord,
    encode_preference,
    record_to_row,
    row_to_record,
)
from tuneforge.data.preference.plan import PreferencePlan
from tuneforge.distributed.data_pipeline import OrderedParquetSink, PreparedData, cache_root
from tuneforge.models.tokenizer import load_tokenizer

PREFERENCE_PIPELINE_VERSION = 1
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


def encode_rows(
    records: list[PreferenceRecord], tokenizer: Any, *, objective: str, template: str, max_seq_len: int,
    truncation: str,
) -> dict[str, list[Any]]:  # fmt: skip
    """Encode a batch of records into model columns (a dropped record drops its whole row).

    KTO's KL rows pair each kept reply's prompt with the previous kept reply (TRL's rotation by one
    within a batch, ``training.preference_loss.rotate_completions``), so the KL estimate compares
    the model's log-probs of replies to prompts they do not answer.
    """
    encoded = [
        (
            rec,
            encode_preference(
                rec, tokenizer, template=template, max_seq_len=max_seq_len, truncation=truncation
            ),
        )
        for rec in records
    ]
    kept = [(rec, enc) for rec, enc in encoded if enc is not None]
    out: dict[str, list[Any]] = {"n_dropped": [0] * len(kept)}
    if kept:
        out["n_dropped"][0] = len(records) - len(kept)
    if objective == "kto":
        previous = [kept[(i - 1) % len(kept)][0] for i in range(len(kept))]
        kl = [
            encode_preference(
                PreferenceRecord(rec.prompt, prev.chosen, label=True, tools=rec.tools), tokenizer,
                template=template, max_seq_len=max_seq_len, truncation="truncate",
            )
            for (rec, _), prev in zip(kept, previous, strict=True)
        ]  # fmt: skip
        for (_, enc), kl_enc in zip(kept, kl, strict=True):
            assert enc is not None and kl_enc is not None
            for col, value in enc.items():  # kto_label is a one-element list: a scalar column
                out.setdefault(col, []).append(value[0] if col == "kto_label" else value)
            for col in ("input_ids", "labels", "attention_mask"):
                out.setdefault(f"kl_{col}", []).append(kl_enc[f"completion_{col}"])
        return out
    for _, enc in kept:
        assert enc is not None
        for col, value in enc.items():
            out.setdefault(col, []).append(value)
    return out


def _encode_batch(batch: Any, *, tokenizer_dir: str, settings: dict[str, Any]) -> dict[str, np.ndarray]:
    rows = batch.to_pylist() if batch.num_rows else []
    cols = encode_rows([row_to_record(r) for r in rows], _tokenizer(tokenizer_dir), **settings)
    return {k: np.asarray(v, dtype=np.int64) for k, v in cols.items()}


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
    settings = {
        "objective": job.method.objective, "template": job.data.template,
        "max_seq_len": job.trainer.max_seq_len, "truncation": job.data.truncation,
    }  # fmt: skip
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


def _count(path: Path) -> tuple[int, int]:
    """Rows and dropped records of a written split."""
    import pyarrow.parquet as pq

    rows = dropped = 0
    for f in sorted(path.glob("*.parquet")):
        table = pq.read_table(f, columns=["n_dropped"])
        rows += table.num_rows
        dropped += int(np.asarray(table.column("n_dropped")).sum())
    return rows, dropped


def build_preference_datasets(
    job: JobConfig, tokenizer_dir: str, plan: PreferencePlan, base_dir: Path, *, materialize: bool = False
) -> PreparedData:
    """Encode (and score, for a precomputed reference) both splits through the cache; stream them back."""
    entry = cache_root(job) / preference_cache_key(job, plan, tokenizer_dir, base_dir)
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
                rows, dropped = _count(tmp / name)
                stats.update({f"{name}_blocks": rows, f"{name}_too_long_dropped": dropped})
            manifest = token_cache.publish(tmp, entry, stats)
    if int(manifest["stats"].get("eval_blocks", 0)) == 0:
        raise ValueError(
            "data: the preference eval split is empty; add data.eval_files or raise data.eval_fraction"
        )
    stats = {**manifest["stats"], **plan.stats(), "cache_hit": int(hit)}
    cols = model_columns(job)
    train: ray.data.Dataset = _read(entry / "train").select_columns(cols)
    evald: ray.data.Dataset = _read(entry / "eval").select_columns(cols)
    if materialize:
        train, evald = train.materialize(), evald.materialize()
    report = {**plan.summary(), "stats": stats, "cache": str(entry)}
    return PreparedData(train, evald, stats, report, cache_dir=str(entry), cache_hit=hit)


def _read(path: Path) -> ray.data.Dataset:
    files = sorted(str(f) for f in path.glob("*.parquet"))
    return ray.data.read_parquet(files, override_num_blocks=max(1, len(files)))
