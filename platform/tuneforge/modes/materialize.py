"""Compile mode sources to JSONL files: what ``tuneforge data build`` writes and what a job's ``modes:``
section becomes before the data plan runs (the plan and the Ray pipeline then see ordinary files).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.config.schema import DatasetSpec, JobConfig
from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, to_openai
from tuneforge.modes.table import get_mode


@dataclass
class BuildReport:
    """One built file: where, how many records, what the builder counted, and the first record."""

    mode: str
    out: str
    records: int
    counts: dict[str, int] = field(default_factory=dict)
    sample: Conversation | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "out": self.out, "records": self.records, "counts": self.counts}


def build_file(
    mode: str,
    sources: Sequence[str],
    out: str | Path,
    seed: int = 0,
    limit: int | None = None,
    options: dict[str, str] | None = None,
) -> BuildReport:
    """Build ``mode``'s records from ``sources`` into ``out`` (OpenAI chat JSONL; ``{"text"}`` for domain)."""
    m = get_mode(mode)
    opts = BuildOptions(seed=seed, limit=limit, options=dict(options or {}))
    convs = m.build_records(list(sources), opts)
    if not convs:
        raise ValueError(f"data build {mode}: no records built from {', '.join(sources) or 'no sources'}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for conv in convs:
            f.write(json.dumps(to_openai(conv), ensure_ascii=False) + "\n")
    tmp.replace(out)
    return BuildReport(mode, str(out), len(convs), dict(opts.counts), convs[0])


def materialize_mode_sources(job: JobConfig, out_dir: str | Path) -> list[dict[str, Any]]:
    """Compile each ``job.data.modes`` entry to ``out_dir/<i>-<hash>/<mode>.jsonl``.

    Returns ``DatasetSpec``-shaped dicts (``path``, ``format``, ``weight``) to append to
    ``data.train_files``. The file name hashes the entry, so reruns with the same entry reuse the name
    (and produce the same bytes: builders are seeded).
    """
    specs = []
    for i, src in enumerate(job.data.modes):
        entry = src.model_dump(by_alias=True)
        key = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:10]
        # the stem is the mode: a sweep's mix names it
        path = Path(out_dir) / f"{i}-{key}" / f"{src.mode}.jsonl"
        build_file(src.mode, src.sources, path, src.seed, src.limit, src.options)
        fmt = "text" if get_mode(src.mode).record_format == "pretrain" else "openai"
        specs.append({"path": str(path), "format": fmt, "weight": src.weight})
    return specs


def with_mode_sources(job: JobConfig, out_dir: str | Path) -> JobConfig:
    """``job`` with its ``data.modes`` compiled and appended to ``data.train_files`` (``modes`` emptied).

    This is the one call the driver makes before planning data; a job without ``modes`` comes back as is.
    """
    if not job.data.modes:
        return job
    added = [DatasetSpec(**s) for s in materialize_mode_sources(job, out_dir)]
    data = job.data.model_copy(update={"train_files": [*job.data.train_files, *added], "modes": []})
    return job.model_copy(update={"data": data})
