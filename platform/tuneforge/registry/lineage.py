"""Lineage tags carried by every registered version: where a model came from, reproducibly.

Base model, method and knobs, data files with content hashes and mixing weights, config hash, the
project's git commit and the training run; a sweep's winner adds its trial (tune/register.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tuneforge.config import JobConfig, config_hash
from tuneforge.data.trained_format import FORMAT_TAG, TrainedFormat
from tuneforge.evaluation.evaluate import file_hash


def git_commit(cwd: str | Path | None = None) -> str:
    """The checked-out commit (``+dirty`` when tracked files changed), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _data_lineage(job: JobConfig) -> list[dict[str, object]]:
    out = []
    for role, specs in (("train", job.data.train_files), ("eval", job.data.eval_files)):
        for s in specs:
            local = Path(s.path)
            out.append(
                {
                    "role": role,
                    "path": s.path,
                    "weight": s.weight,
                    "sha256": file_hash(local) if local.is_file() else "remote",
                }
            )
    return out


def lineage_tags(
    job: JobConfig, run_id: str, eval_hash: str | None = None, fmt: TrainedFormat | None = None
) -> dict[str, str]:
    """String tags for the registered version (MLflow tag values are strings, <= 5000 chars).

    ``fmt`` (template, length, masks as trained) is what every later scorer of the version renders with.
    """
    method = job.method.model_dump(mode="json")
    tags = {
        "tuneforge.run_id": run_id,
        "tuneforge.base": str(job.model.name_or_path or "tiny-llama-from-config"),
        "tuneforge.method": job.method.name,
        "tuneforge.method.knobs": json.dumps(method, sort_keys=True)[:5000],
        "tuneforge.data": json.dumps(_data_lineage(job), sort_keys=True)[:5000],
        "tuneforge.config_hash": config_hash(job),
        "tuneforge.git_commit": git_commit(Path(__file__).resolve().parent),
    }
    if eval_hash:
        tags["tuneforge.eval.data_hash"] = eval_hash
    if fmt is not None:
        tags[FORMAT_TAG] = fmt.to_json()
    return tags
