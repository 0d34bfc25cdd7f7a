"""Register a sweep's best trial as the ``challenger`` of a registered model, ready for the gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from tuneforge.config import JobConfig
from tuneforge.data.trained_format import format_from_job
from tuneforge.models.base import tokenizer_dir
from tuneforge.models.io import merge_adapter
from tuneforge.models.method_traits import FULL_WEIGHTS, MERGEABLE_ADAPTERS
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.registry.lineage import lineage_tags
from tuneforge.registry.promotion import CHALLENGER
from tuneforge.tracking import log_hf_model


def register_best(
    best: dict[str, Any], job: JobConfig, uri: str, base_dir: Path, sweep_dir: Path, parent_run_id: str
) -> tuple[str | None, str | None]:
    """Log the best trial's model on its child run, register it and set ``challenger``.

    Prompt-learning adapters cannot be merged into plain weights; they are not registered (the
    registry serves plain HF models) and the checkpoint stays in the sweep directory.
    """
    method = best["method"]
    ckpt = Path(best["checkpoint"])
    if method in FULL_WEIGHTS:
        model_dir, adapter_dir = ckpt, None
    elif method in MERGEABLE_ADAPTERS:
        model_dir, adapter_dir = merge_adapter(base_dir, ckpt, sweep_dir / "best-merged"), ckpt
    else:
        return None, None
    os.environ["TUNEFORGE_TRIAL_ID"] = str(best["trial_id"])
    try:
        fmt = format_from_job(job, load_tokenizer(tokenizer_dir(job.model, base_dir)))
        fmt.write(sweep_dir)
        tags = lineage_tags(job, best.get("run_id") or parent_run_id, fmt=fmt)
    finally:
        os.environ.pop("TUNEFORGE_TRIAL_ID", None)
    tags["tuneforge.method"] = method
    tags["tuneforge.sweep_parent_run_id"] = parent_run_id
    logged = log_hf_model(
        best.get("run_id") or parent_run_id,
        model_dir,
        registered_model_name=job.registry.model_name,
        adapter_dir=adapter_dir,
        tags=tags,
    )
    if logged.version:
        MlflowClient(uri).set_registered_model_alias(job.registry.model_name, CHALLENGER, logged.version)
    return logged.registered_name, logged.version
