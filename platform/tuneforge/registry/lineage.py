"""Lineage tags carried by every registered version: where a model came from, reproducibly.

Base model, method and knobs, data files with content hashes and mixing weights, config hash, the
project's git commit and the training run; a sweep's winner adds its trial (tune/register.py).

A data file's hash is the run's data plan's sha256 of it (``SourcePlan.sha256``, the same digest
the run logs and keys its tokenized cache with): lineage reads no input file again. Without a plan
(or for a file the plan does not list) a local file is hashed here, with the same full sha256.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tuneforge.config import DataConfig, MethodConfig, ModelConfig
from tuneforge.data.files import sha256_file
from tuneforge.data.plan import DataPlan
from tuneforge.data.trained_format import FORMAT_TAG, TrainedFormat


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


def _planned_digest(plan: DataPlan | None, role: str, index: int, path: str) -> str | None:
    """The plan's sha256 of the ``index``-th ``role`` file, if the plan lists that file there."""
    if plan is None:
        return None
    sp = next((s for s in plan.sources if s.split == role and s.index == index), None)
    if sp is None or not sp.sha256 or not (sp.source == path or sp.source.startswith(f"{path}#")):
        return None
    return sp.sha256


def _data_lineage(data: DataConfig, plan: DataPlan | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for role, specs in (("train", data.train_files), ("eval", data.eval_files)):
        for i, s in enumerate(specs):
            digest = _planned_digest(plan, role, i, str(s.path))
            if digest is None:
                local = Path(s.path)
                digest = sha256_file(local) if local.is_file() else "remote"
            out.append({"role": role, "path": s.path, "weight": s.weight, "sha256": digest})
    return out


def lineage_tags(
    run_id: str,
    *,
    model: ModelConfig,
    method: MethodConfig,
    data: DataConfig,
    job_hash: str,
    eval_hash: str | None = None,
    fmt: TrainedFormat | None = None,
    plan: DataPlan | None = None,
) -> dict[str, str]:
    """String tags for the registered version (MLflow tag values are strings, <= 5000 chars).

    ``model``, ``method`` and ``data`` are the sections of the job that trained the version and
    ``job_hash`` is that job's ``config_hash``. ``fmt`` (template, length, masks as trained) is what
    every later scorer of the version renders with; ``plan`` (the run's data plan) gives the data
    files' hashes without reading them again.
    """
    knobs = method.model_dump(mode="json")
    tags = {
        "tuneforge.run_id": run_id,
        "tuneforge.base": str(model.name_or_path or "tiny-llama-from-config"),
        "tuneforge.method": method.name,
        "tuneforge.method.knobs": json.dumps(knobs, sort_keys=True)[:5000],
        "tuneforge.data": json.dumps(_data_lineage(data, plan), sort_keys=True)[:5000],
        "tuneforge.config_hash": job_hash,
        "tuneforge.git_commit": git_commit(Path(__file__).resolve().parent),
    }
    if eval_hash:
        tags["tuneforge.eval.data_hash"] = eval_hash
    if fmt is not None:
        tags[FORMAT_TAG] = fmt.to_json()
    return tags
