"""The tokenized-data cache: its key, its manifest, and the atomic publish of an entry (pure, no Ray).

An entry is a directory ``<cache root>/<key>/`` holding ``train/`` and ``eval/`` Parquet files and a
``manifest.json``. ``cache_key`` hashes everything that decides the token rows: every input file's
sha256 (the data plan's digest: nothing is read again) and format, the mixing weights and factors,
the plan's dedup/split/mix settings and drop set, the tokenizer's files, the encode settings
(template, max_seq_len, packing, loss masks, truncation) and ``PIPELINE_VERSION``.

An entry is written under a hidden temporary directory next to it (``staged``: removed again if the
write fails), and ``publish`` writes the manifest last and renames the directory into place, so
an entry either has a valid manifest or does not exist under its key. ``read_manifest`` validates a
manifest (its key, version, stats and listed files) before an entry is trusted; an entry without a
valid one is an unfinished write and is rebuilt (``clear_unfinished``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.data.formats import FormatSpec
from tuneforge.data.plan import DataPlan
from tuneforge.data.tokenize_blocks import COUNTERS, EncodeSettings

#: bump when the rows the pipeline writes change for the same inputs (invalidates every cache entry)
# 2: seeded global shuffle, source_tokens; 3: order-keeping Parquet sink; 4: best-fit decreasing packing
PIPELINE_VERSION = 4
MANIFEST = "manifest.json"
SPLITS = ("train", "eval")


@dataclass(frozen=True)
class PlanSettings:
    """The job settings that decide the plan's records and the rows taken from them."""

    dedup: bool
    near_dedup: float | None
    eval_fraction: float
    seed: int
    on_bad: str
    max_records: int | None


def tokenizer_fingerprint(tokenizer_dir: str | Path) -> str:
    """sha256 over the tokenizer's files: a retrained or edited tokenizer gets new cache entries."""
    h = hashlib.sha256()
    for path in sorted(Path(tokenizer_dir).glob("*")):
        if path.is_file() and (
            path.name.startswith(("tokenizer", "special_tokens")) or path.suffix == ".model"
        ):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(
    plan: DataPlan,
    tokenizer_dir: str | Path,
    settings: PlanSettings,
    encode: EncodeSettings,
    *,
    version: int = PIPELINE_VERSION,
) -> str:
    """Content hash of everything that decides the tokenized rows (24 hex characters)."""
    parts = {
        "version": version,
        "sources": [
            [sp.split, sp.index, sp.sha256, _fmt_arg(sp.fmt_arg), sp.weight, sp.factor] for sp in plan.sources
        ],
        "plan": list(astuple(settings)),
        "drop": hashlib.sha256(repr(sorted(plan.drop)).encode()).hexdigest(),
        "tokenizer": tokenizer_fingerprint(tokenizer_dir),
        "encode": encode.key(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _fmt_arg(fmt_arg: str | FormatSpec) -> Any:
    return asdict(fmt_arg) if isinstance(fmt_arg, FormatSpec) else fmt_arg


# -- entries -------------------------------------------------------------------------------------------


def _split_files(entry: Path) -> dict[str, list[str]]:
    return {s: sorted(f.name for f in (entry / s).glob("*.parquet")) for s in SPLITS}


def read_manifest(entry: Path) -> dict[str, Any] | None:
    """The entry's manifest if it is complete and belongs to this entry, else None.

    Valid means: JSON object, ``key`` is the entry's name, ``version`` is ``PIPELINE_VERSION``,
    ``stats`` is an object, both split directories exist and, when it lists ``files``, exactly
    those Parquet files are there.
    """
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != entry.name:
        return None
    if manifest.get("version") != PIPELINE_VERSION or not isinstance(manifest.get("stats"), dict):
        return None
    if not all((entry / s).is_dir() for s in SPLITS):
        return None
    if "files" in manifest and manifest["files"] != _split_files(entry):
        return None
    return manifest


def clear_unfinished(entry: Path) -> None:
    """Remove ``entry`` when it exists without a valid manifest (an older, crashed or foreign write)."""
    if entry.exists() and read_manifest(entry) is None:
        shutil.rmtree(entry)


@contextmanager
def staged(entry: Path) -> Iterator[Path]:
    """A fresh temporary directory beside ``entry`` to write it in; removed if the write fails."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, entry: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest into ``tmp`` and rename it to ``entry`` atomically; returns the manifest.

    When a concurrent writer of the same key published first, its entry is kept and this one
    removed (the same key means the same rows).
    """
    for split in SPLITS:
        (tmp / split).mkdir(parents=True, exist_ok=True)  # an empty split writes no file
    manifest = {"key": entry.name, "stats": stats, "version": PIPELINE_VERSION, "files": _split_files(tmp)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    try:
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    published = read_manifest(entry)
    if published is None:
        raise RuntimeError(f"{entry}: the published cache entry has no valid manifest")
    return published


def split_stats(path: Path, prefix: str, max_seq_len: int) -> dict[str, float]:
    """Block and token counts of one written split, summed from its Parquet files.

    Only the small counter columns are read, one file at a time, with pyarrow (the entry is on a
    filesystem the driver reads anyway): a Ray Data ``aggregate`` here started hash aggregator actors
    and took 6-10 s per split on a 2-CPU machine, for a handful of integers.
    """
    import pyarrow.parquet as pq

    columns = ("n_real", *COUNTERS)
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
    for name, column in zip(names, COUNTERS, strict=True):
        stats[f"{prefix}_{name}"] = total[column]
    stats[f"{prefix}_tokens"] = total["n_real"]
    stats[f"{prefix}_padding_share"] = float(1.0 - total["n_real"] / (rows * max_seq_len))
    return stats


__all__ = [
    "MANIFEST",
    "PIPELINE_VERSION",
    "PlanSettings",
    "cache_key",
    "clear_unfinished",
    "publish",
    "read_manifest",
    "split_stats",
    "staged",
    "tokenizer_fingerprint",
]
