"""Register a sweep's best trial as the ``challenger`` of a registered model, ready for the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.config import JobConfig
from tuneforge.distributed.stages import Prepared, log_model
from tuneforge.models.method_traits import registrable
from tuneforge.registry.promotion import CHALLENGER
from tuneforge.tracking import LoggedModel, TrackingClient


def register_best(
    best: dict[str, Any], job: JobConfig, prepared: Prepared, sweep_dir: Path, parent_run_id: str
) -> LoggedModel:
    """Log the best trial's model on its child run, register it and set ``challenger``.

    ``job`` is the trial's own job (the sweep's base with the trial's strategy applied), so the
    version's lineage names the knobs that trained it. It is logged by the same stage as a run's
    model (distributed/stages.py). Prompt-learning adapters cannot be merged into plain weights;
    they are not registered and the checkpoint stays in the sweep directory.
    """
    if not registrable(job.method.name):
        return LoggedModel(model_uri=str(best["checkpoint"]), registered_name=None, version=None)
    run_id = best.get("run_id") or parent_run_id
    extra = {
        "tuneforge.sweep_trial_id": str(best["trial_id"]),
        "tuneforge.sweep_parent_run_id": parent_run_id,
    }
    logged = log_model(
        job, prepared, run_id, Path(best["checkpoint"]), sweep_dir / "best", _quiet, extra_tags=extra
    )
    if logged.version and logged.registered_name:  # a version comes with its name (job.registry.model_name)
        TrackingClient(prepared.uri).set_alias(logged.registered_name, CHALLENGER, logged.version)
    return logged


def _quiet(_message: str) -> None:
    """Unmergeable methods return before logging; nothing else is said."""
