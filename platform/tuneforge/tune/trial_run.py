"""One sweep trial as Ray Tune runs it: the sampled strategy applied to the base job, then a fit.

The function trainable ``run_trial`` runs in a Tune trial actor; what the driver prepared once for
all trials (tokenized data, the base model, the MLflow parent run) reaches it as ``TrialInputs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from tuneforge.config import JobConfig, config_from_dict
from tuneforge.distributed import stages
from tuneforge.distributed.data_pipeline import PreparedData
from tuneforge.distributed.mix_data import MixSources, mixed_datasets
from tuneforge.distributed.stages import attempt_name, attempt_storages, resume_point, without_unsafe_packing
from tuneforge.models.base import model_trust_tags
from tuneforge.tracking import TrackingClient, redact_value
from tuneforge.tune.trial import apply_overrides, resolve_trial_config

TRIAL_TAG = "tuneforge.trial_id"


@dataclass(frozen=True)
class TrialInputs:
    """What the sweep driver prepared once and every trial reads (shipped via ``tune.with_parameters``).

    Keyed by ``data.packing``: a prompt-tuning branch cannot pack, so a sweep mixing it with
    packing methods tokenizes both ways. Exactly one of ``data`` (a fixed data mix) and ``mix``
    (a data-mix search: per-source caches, combined per trial) is filled.
    """

    uri: str
    experiment_id: str
    parent_run_id: str
    prepared: stages.Prepared
    sweep_dir: Path
    data: dict[bool, PreparedData]
    mix: dict[bool, MixSources]


def quiet(_message: str) -> None:
    """Trials have no console: their progress is the child run and Tune's table."""


def trial_job(base: dict[str, Any], params: dict[str, Any]) -> JobConfig:
    """The job a trial trains: the sweep's base job with the trial's strategy applied."""
    return without_unsafe_packing(apply_overrides(config_from_dict(base), params), quiet)


def run_trial(config: dict[str, Any], *, base: dict[str, Any], inputs: TrialInputs) -> None:
    """One trial: apply the sampled strategy to the base job, log a child run, fit through stages.fit.

    The same recovery as a run: Ray Train replaces a killed worker (``max_failures``) and the
    workers continue from the newest complete checkpoint; a trial Tune restarts (``sweep --resume``)
    continues from the newest complete checkpoint of its earlier attempts, orphans removed.
    """
    params = resolve_trial_config(config)
    job = trial_job(base, params)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    name = f"trial-{trial_id}"
    if job.trainer.batch_ledger:  # concurrent trials must not append to one another's ledger
        ledger = str(Path(job.trainer.batch_ledger) / name)
        job = job.model_copy(update={"trainer": job.trainer.model_copy(update={"batch_ledger": ledger})})
    client = TrackingClient(inputs.uri)
    run_id = client.create_child_run(
        inputs.parent_run_id,
        name,
        {TRIAL_TAG: trial_id, "tuneforge.method": job.method.name, **model_trust_tags(job.model)},
        experiment_id=inputs.experiment_id,
    )
    client.log_params(run_id, {key: str(redact_value(key, value))[:500] for key, value in params.items()})
    # Prepared on the driver: Ray Data launched from inside a trial would be captured by the trial's
    # placement group (a 0.01-CPU bundle) and could never schedule its tasks.
    if inputs.mix:  # a data-mix search: this trial's weights pick cached blocks per source
        weights = [float(spec.weight or 1.0) for spec in job.data.train_files]
        data = mixed_datasets(inputs.mix[job.data.packing], weights, job.trainer.seed)
        client.log_params(run_id, {"mix_blocks": str(data.stats["mix_blocks"])})
    else:
        data = inputs.data[job.data.packing]
    storage = inputs.sweep_dir / "trials"
    resume_from = resume_point(storage, name, quiet)
    attempt = len(attempt_storages(storage, name)) if resume_from is not None else 0
    stages.fit(
        job,
        inputs.prepared,
        data,
        run_id=run_id,
        name=attempt_name(name, attempt),
        storage_root=storage,
        resume_from=resume_from,
        callbacks=[TuneReportCallback()],
        hint="the sweep is resumable: tuneforge sweep <config> --name <name> --resume",
    )
    client.finish_run(run_id, "FINISHED")
