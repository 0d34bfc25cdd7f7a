"""The stages every training driver runs, shared by ``tuneforge train`` and each sweep trial.

Over 300 lines on purpose: every stage a driver runs, with the failure messages each stage owes
the user; the two drivers read them top to bottom.

``prepare`` (inputs validated, base model and tokenizer materialised, the trained format recorded),
``resume_point`` (the newest complete checkpoint on storage, orphans removed), ``fit`` (one
``TorchTrainer`` with the same recovery: ``max_failures`` restarts, a bounded worker-group start,
one clear line when it gives up), ``log_model`` (lineage of the job that *trained* the model, not
of the job it was derived from) and ``gate`` (promotion). ``run_job`` (distributed/runner.py) and
``run_sweep`` (tune/driver.py) are sequences of these, so resume, recovery and lineage behave the
same in a trial as in a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train

from tuneforge.config import JobConfig, config_hash
from tuneforge.data.holdout import HoldoutWriter
from tuneforge.data.plan import DataPlan, TextSample
from tuneforge.data.preference.plan import PreferencePlan, plan_preference, write_pairs
from tuneforge.data.trained_format import TrainedFormat, format_from_job
from tuneforge.distributed.data_pipeline import PreparedData, build_plan
from tuneforge.distributed.preflight import START_RETRIES, WORKER_GROUP_START_TIMEOUT_S
from tuneforge.distributed.trainer_factory import make_trainer
from tuneforge.models.base import prepare_base, tokenizer_dir
from tuneforge.models.io import merge_adapter
from tuneforge.models.method_traits import MERGEABLE_ADAPTERS, registrable, supports_packing
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.modes.materialize import with_mode_sources
from tuneforge.paths import tuneforge_home
from tuneforge.registry.lineage import lineage_tags
from tuneforge.tracking import LoggedModel, log_artifacts, log_hf_model, resolve_tracking_uri
from tuneforge.training.checkpoint_store import incomplete_reason, latest_resumable, remove_orphans
from tuneforge.training.resume import TrainingFailed

Say = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """What every attempt of a run (or every trial of a sweep) trains from, prepared once."""

    job: JobConfig  # with ``modes:`` compiled to train files
    plan: DataPlan | PreferencePlan  # PreferencePlan: a preference objective (method.objective)
    base_dir: Path
    tok_dir: Path
    fmt: TrainedFormat
    uri: str


def without_unsafe_packing(job: JobConfig, say: Say) -> JobConfig:
    """Prompt-learning methods train on padded batches: peft ignores their packed position ids."""
    if job.data.packing and not supports_packing(job.method.name):
        say(f"{job.method.name}: packing off (peft ignores position_ids for virtual tokens), padding instead")
        return job.model_copy(update={"data": job.data.model_copy(update={"packing": False})})
    return job


def total_steps_for(job: JobConfig, train_blocks: int) -> int:
    """Optimizer steps: ``max_steps`` or whole epochs of what each worker's shard can batch."""
    t, world = job.trainer, job.distributed.num_workers
    per_step = t.micro_batch_size * t.grad_accum
    steps_per_epoch = (train_blocks // world) // per_step
    if steps_per_epoch == 0:
        raise ValueError(
            f"data.train_files: {train_blocks} training sequences cannot fill one step of "
            f"{world} workers x micro_batch_size {t.micro_batch_size} x grad_accum {t.grad_accum}; "
            "add data or lower trainer.micro_batch_size"
        )
    return t.max_steps or steps_per_epoch * t.num_epochs


def trained_format(job: JobConfig, tok_dir: Path) -> TrainedFormat:
    """Template, length and masks as ``job`` trains them: what every later scorer renders with."""
    return format_from_job(job, load_tokenizer(tok_dir, job.model.trust_remote_code))


def prepare(job: JobConfig, work_dir: Path, say: Say) -> Prepared:
    """Compile modes, validate every input, materialise the base model and its tokenizer.

    ``work_dir`` (a run's or a sweep's directory) receives ``modes/``, ``base/``, the trained
    format, by which checkpoints under it are scored, and the held-out split ``eval.jsonl``. The data
    plan is the only read of the input files on the driver: the tokenizer's sample texts and the
    held-out split are taken during its pass, and the cache key and lineage use its digests.
    """
    job = with_mode_sources(job, work_dir / "modes")  # `modes:` compiled to JSONL train files
    say("validating data")
    if job.method.is_preference:
        return _prepare_base(job, _preference_plan(job, work_dir), work_dir, say)
    sample = TextSample(job.data.template) if job.model.name_or_path is None else None
    holdout = HoldoutWriter(work_dir / "eval.jsonl")
    try:
        plan = build_plan(job.data, job.trainer.seed, [v for v in (sample, holdout) if v is not None])
    except BaseException:
        holdout.abort()
        raise
    plan.holdout = holdout.publish()
    return _prepare_base(job, plan, work_dir, say, sample.texts() if sample is not None else [])


def _preference_plan(job: JobConfig, work_dir: Path) -> PreferencePlan:
    """Read, check, dedup and split the preference files; the held-out pairs go to ``eval.jsonl``."""
    d = job.data
    plan = plan_preference(
        d.train_files, d.eval_files, objective=job.method.objective, eval_fraction=d.eval_fraction,
        seed=job.trainer.seed, dedup=d.dedup, on_bad=d.on_bad_record, max_records=d.max_records,
    )  # fmt: skip
    plan.holdout = write_pairs(plan.held_out, work_dir / "eval.jsonl")
    return plan


def _prepare_base(
    job: JobConfig, plan: DataPlan | PreferencePlan, work_dir: Path, say: Say, texts: list[str] | None = None
) -> Prepared:
    """Materialise the base model and tokenizer (a tiny model's BPE learns from the plan's texts)."""
    if texts is None:
        texts = plan.texts() if isinstance(plan, PreferencePlan) and job.model.name_or_path is None else []
    say("preparing base model and tokenizer")
    cache = tuneforge_home() / "cache" / "models"
    base_dir = prepare_base(job.model, texts, work_dir / "base", job.trainer.seed, cache)
    tok_dir = tokenizer_dir(job.model, base_dir)
    fmt = trained_format(job, tok_dir)
    fmt.write(work_dir)
    return Prepared(job, plan, base_dir, tok_dir, fmt, resolve_tracking_uri(job.tracking.uri))


def attempt_storages(storage_root: Path, name: str) -> list[Path]:
    """Ray storage folders of every attempt of ``name``: ``<name>`` and ``<name>-resume<N>``."""
    attempts = [p for p in storage_root.glob(f"{name}*") if p.is_dir()]
    return sorted(p for p in attempts if p.name == name or p.name.startswith(f"{name}-resume"))


def resume_point(storage_root: Path, name: str, say: Say, checkpoint: Path | None = None) -> Path | None:
    """The checkpoint a new attempt of ``name`` continues from: ``checkpoint``, else the newest complete.

    Incomplete checkpoints (a crash mid-write) are removed first from every attempt's storage. A
    named checkpoint that is not complete is refused rather than silently replaced by another.
    """
    storages = attempt_storages(storage_root, name)
    for storage in storages:
        for orphan in remove_orphans(storage):
            say(f"removed an incomplete checkpoint (a crash mid-write): {orphan.name}")
    if checkpoint is not None:
        reason = incomplete_reason(checkpoint)
        if reason is not None:
            raise ValueError(f"--resume {checkpoint}: not a complete checkpoint ({reason})")
        return checkpoint
    found = [c for c in (latest_resumable(s) for s in storages) if c is not None]
    return max(found, key=lambda c: c.state.step).path if found else None


def attempt_name(name: str, attempt: int) -> str:
    """Each resumption runs under its own Ray name in the same storage root.

    Ray's snapshot of an earlier attempt still lists checkpoints that retention or orphan removal
    deleted, and Ray refuses to restore such a snapshot; a fresh name starts from ``resume_from``.
    """
    return name if attempt == 0 else f"{name}-resume{attempt}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes; Ray Train's ``ControllerError`` holds its cause as ``controller_failure``."""
    out = [exc]
    while len(out) < 20:
        nxt = out[-1].__cause__ or getattr(out[-1], "controller_failure", None)
        if not isinstance(nxt, BaseException):
            break
        out.append(nxt)
    return out


def _root_cause(exc: BaseException) -> str:
    """The innermost error's first line: what killed the workers, without Ray's wrapping."""
    inner = _chain(exc)[-1]
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".strip(": ")


def failure_message(exc: BaseException, job: JobConfig, resources: tuple[dict, dict] | None = None) -> str:
    """One line for a ``fit`` that gave up; a worker group that never started says what it waited for.

    ``resources`` is (total, available) of the cluster, read when the failure is reported: a group
    that fits the cluster but cannot start is waiting for resources someone else holds.
    """
    d = job.distributed
    if any(type(e).__name__ == "WorkerGroupStartupTimeoutError" for e in _chain(exc)):
        total, free = resources if resources is not None else ({}, {})
        wait = float(os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", WORKER_GROUP_START_TIMEOUT_S))
        want = f"{d.num_workers} workers x {d.cpus_per_worker:g} CPU" + (" + 1 GPU each" if d.use_gpu else "")
        has = f"{total.get('CPU', 0):g} CPUs, {free.get('CPU', 0):g} free"
        if d.use_gpu:
            has += f"; {total.get('GPU', 0):g} GPUs, {free.get('GPU', 0):g} free"
        return (
            f"the worker group did not start: {START_RETRIES + 1} tries of {wait:g} s waiting for {want}, "
            f"but the cluster has {has} (other runs or sweeps hold the rest)"
        )
    return f"training failed ({_root_cause(exc)}) after {d.max_failures} allowed restart(s)"


def _cluster_resources() -> tuple[dict, dict] | None:
    try:
        return ray.cluster_resources(), ray.available_resources()
    except Exception:  # noqa: BLE001 - only for the message; the failure itself is what matters
        return None


def fit(
    job: JobConfig,
    prepared: Prepared,
    data: PreparedData,
    *,
    run_id: str | None,
    name: str,
    storage_root: Path,
    hint: str,
    resume_from: Path | None = None,
    callbacks: list[Any] | None = None,
) -> ray.train.Result:
    """Train with Ray Train; giving up after the allowed restarts is one ``TrainingFailed`` line."""
    trainer = make_trainer(
        job,
        base_dir=prepared.base_dir,
        tok_dir=prepared.tok_dir,
        data=data,
        total_steps=total_steps_for(job, int(data.stats["train_blocks"])),
        tracking_uri=prepared.uri,
        run_id=run_id,
        name=name,
        storage_path=storage_root,
        resume_from=resume_from,
        callbacks=callbacks,
    )
    try:
        return trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise TrainingFailed(f"{failure_message(exc, job, _cluster_resources())}; {hint}") from exc


def log_model(
    job: JobConfig,
    prepared: Prepared,
    run_id: str,
    ckpt: Path,
    out_dir: Path,
    say: Say,
    *,
    eval_hash: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> LoggedModel:
    """Log the model ``job`` trained into ``ckpt``; the registry gets plain HF weights.

    Mergeable adapters are merged into the base (the adapter is logged beside them). Prompt-learning
    adapters cannot be merged: their adapter and the base are logged as run artifacts and nothing is
    registered. Lineage (knobs, data, trained format) is ``job``'s: for a sweep, the trial's job.
    """
    fmt = trained_format(job, prepared.tok_dir)
    plan = prepared.plan if isinstance(prepared.plan, DataPlan) else None  # preference: files hashed here
    lineage = lineage_tags(
        run_id, model=job.model, method=job.method, data=job.data, job_hash=config_hash(job),
        eval_hash=eval_hash, fmt=fmt, plan=plan,
    )  # fmt: skip
    tags = {**lineage, **(extra_tags or {})}
    if registrable(job.method.name):
        model_dir, adapter_dir = ckpt, None
        if job.method.name in MERGEABLE_ADAPTERS:
            model_dir, adapter_dir = merge_adapter(prepared.base_dir, ckpt, out_dir / "merged"), ckpt
        name = job.registry.model_name
        return log_hf_model(run_id, model_dir, registered_model_name=name, adapter_dir=adapter_dir, tags=tags)
    say(f"{job.method.name} adapters cannot be merged: logged as artifacts, not registered")
    log_artifacts(run_id, str(ckpt), "adapter")
    log_artifacts(run_id, str(prepared.base_dir), "base")
    return LoggedModel(model_uri=f"runs:/{run_id}/adapter", registered_name=None, version=None)


def gate(job: JobConfig, logged: LoggedModel, holdout: Path, uri: str) -> dict | None:
    """The promotion gate for a newly registered version (``registry.promote``), or None."""
    if not (job.registry.promote and logged.version and logged.registered_name):
        return None
    from tuneforge.registry.promotion import promote

    decision = promote(
        logged.registered_name,
        logged.version,
        str(holdout),
        uri,
        job.registry.promote_metric,
        job.registry.min_delta,
    )
    return decision.to_dict()


__all__ = [
    "Prepared",
    "attempt_name",
    "attempt_storages",
    "failure_message",
    "fit",
    "gate",
    "log_model",
    "prepare",
    "resume_point",
    "total_steps_for",
    "trained_format",
    "without_unsafe_packing",
]
