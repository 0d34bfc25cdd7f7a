"""The driver of one fine-tuning run: data -> Ray Train + DeepSpeed -> MLflow model + registry.

``run_job`` is what ``tuneforge train`` and ``jobs/finetune.py`` call. It runs on the Ray head (or
the submitting machine): it validates data, materialises the base model, prepares Ray datasets,
fits a ``TorchTrainer``, then logs and registers the trained model from the final checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import ray.train

from tuneforge.config import JobConfig, save_config
from tuneforge.data.plan import DataPlan
from tuneforge.data.trained_format import FORMAT_TAG, format_from_job
from tuneforge.distributed.cluster import ensure_ray, quiet_libraries
from tuneforge.distributed.data_pipeline import build_datasets, build_plan
from tuneforge.distributed.holdout import write_holdout
from tuneforge.distributed.preflight import check_before_work, check_cluster_fits
from tuneforge.distributed.trainer_factory import make_trainer
from tuneforge.evaluation.evaluate import file_hash
from tuneforge.models.base import model_trust_tags, prepare_base, tokenizer_dir
from tuneforge.models.io import merge_adapter
from tuneforge.models.method_traits import MERGEABLE_ADAPTERS, registrable, supports_packing
from tuneforge.models.methods import check_method_available
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.modes.materialize import with_mode_sources
from tuneforge.registry.lineage import lineage_tags
from tuneforge.registry.promotion import promote
from tuneforge.tracking import (
    LoggedModel,
    end_run,
    home_dir,
    log_artifacts,
    log_dict_artifact,
    log_hf_model,
    log_params_flat,
    redact_mapping,
    redact_uri,
    resolve_tracking_uri,
    set_tags,
    start_run,
    tuneforge_home,
    ui_command,
)
from tuneforge.training.checkpoint_store import incomplete_reason, latest_resumable, remove_orphans
from tuneforge.training.resume import CONFIG_FILE, ResumeTarget, RunRecord, TrainingFailed, resumed_job


class RunEvents(Protocol):
    """Progress hooks for a front end (the CLI shows them; jobs print them)."""

    def phase(self, message: str) -> None: ...

    def training_started(self, tracking_uri: str, run_id: str, total_steps: int) -> None: ...

    def training_finished(self) -> None: ...


class _Silent:
    def phase(self, message: str) -> None:
        pass

    def training_started(self, tracking_uri: str, run_id: str, total_steps: int) -> None:
        pass

    def training_finished(self) -> None:
        pass


@dataclass
class RunSummary:
    """The result of a run; ``--json`` prints it as the last line."""

    run_id: str
    registered_model: str | None
    version: str | None
    eval_loss_before: float
    eval_loss_after: float
    train_tokens: int
    tokens_per_second: float
    checkpoint: str
    model_uri: str
    run_dir: str
    tracking_uri: str
    ui_command: str
    steps: int
    wall_seconds: float
    promotion: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _run_name(job: JobConfig) -> str:
    return job.tracking.run_name or f"{job.method.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def without_unsafe_packing(job: JobConfig, say: Callable[[str], None]) -> JobConfig:
    """Prompt-learning methods train on padded batches: peft ignores their packed position ids."""
    if job.data.packing and not supports_packing(job.method.name):
        say(f"{job.method.name}: packing off (peft ignores position_ids for virtual tokens), padding instead")
        return job.model_copy(update={"data": job.data.model_copy(update={"packing": False})})
    return job


def _log_result(
    job: JobConfig,
    run_id: str,
    ckpt: Path,
    base_dir: Path,
    run_dir: Path,
    tags: dict[str, str],
    events: RunEvents,
) -> LoggedModel:
    """Log the trained model; the registry gets plain HF weights (adapters merged when they can be).

    Prompt-learning adapters cannot be merged: their adapter directory and the base are logged as
    run artifacts and nothing is registered.
    """
    if registrable(job.method.name):
        model_dir, adapter_dir = ckpt, None
        if job.method.name in MERGEABLE_ADAPTERS:
            model_dir, adapter_dir = merge_adapter(base_dir, ckpt, run_dir / "merged"), ckpt
        return log_hf_model(
            run_id,
            model_dir,
            registered_model_name=job.registry.model_name,
            adapter_dir=adapter_dir,
            tags=tags,
        )
    events.phase(f"{job.method.name} adapters cannot be merged: logged as artifacts, not registered")
    log_artifacts(run_id, str(ckpt), "adapter")
    log_artifacts(run_id, str(base_dir), "base")
    return LoggedModel(model_uri=f"runs:/{run_id}/adapter", registered_name=None, version=None)


def _root_cause(exc: BaseException) -> str:
    """The innermost error's first line: what killed the workers, without Ray's wrapping."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")


def _resume_point(resume: ResumeTarget, run_dir: Path, name: str, events: RunEvents) -> tuple[str, Path]:
    """(Ray run name, checkpoint) for a resumption: the named checkpoint, else the newest complete one.

    Each resumption runs under its own Ray name (``<name>-resume<N>``) in the same storage: Ray's
    snapshot of the earlier attempt still lists checkpoints that retention or orphan removal
    deleted, and Ray refuses to restore such a snapshot. Incomplete checkpoints are removed here.
    """
    storages = [p for p in sorted((run_dir / "ray").glob(f"{name}*")) if p.is_dir()]
    for storage in storages:
        for orphan in remove_orphans(storage):
            events.phase(f"removed an incomplete checkpoint (a crash mid-write): {orphan.name}")
    if resume.checkpoint is not None:
        reason = incomplete_reason(resume.checkpoint)
        if reason is not None:
            raise ValueError(f"--resume {resume.checkpoint}: not a complete checkpoint ({reason})")
        chosen: Path | None = resume.checkpoint
    else:
        found = [c for c in (latest_resumable(s) for s in storages) if c is not None]
        chosen = max(found, key=lambda c: c.state.step).path if found else None
    if chosen is None:
        raise ValueError(
            f"--resume {run_dir}: no complete resumable checkpoint "
            "(set trainer.checkpoint_every to save them)"
        )
    events.phase(f"resuming from {chosen.name}")
    return f"{name}-resume{resume.record.resumes}", chosen


def _resume_tags(job: JobConfig) -> dict[str, str]:
    """What a resumption ran with (its worker count may differ from the run's logged params)."""
    d, t = job.distributed, job.trainer
    return {
        "tuneforge.resume.num_workers": str(d.num_workers),
        "tuneforge.resume.grad_accum": str(t.grad_accum),
        "tuneforge.resume.max_steps": str(t.max_steps),
    }


def validate_and_sample_texts(job: JobConfig, plan: DataPlan | None = None, limit: int = 20_000) -> list[str]:
    """Validate every input (via the plan) and return up to ``limit`` rendered train texts.

    The texts train the tiny model's tokenizer; a real base model brings its own, so none are read.
    The files are streamed, so the sample never needs the corpus in memory.
    """
    plan = plan or build_plan(job)  # bad records raise here (or are counted with on_bad_record=skip)
    if job.model.name_or_path is not None:
        return []
    return plan.sample_texts(job.data.template, limit)


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


def run_job(
    job: JobConfig,
    events: RunEvents | None = None,
    verbose: bool = False,
    resume: ResumeTarget | None = None,
    overwrite: bool = False,
) -> RunSummary:
    """Fine-tune, evaluate, log and register one model as the job spec says.

    With ``resume`` (``train --resume``), the stopped run continues: same run directory, same MLflow
    run, same Ray storage, from its newest complete checkpoint (training/resume.py says what may change).
    """
    events = events or _Silent()
    quiet_libraries(verbose)
    check_method_available(job.method, use_gpu=job.distributed.use_gpu)  # QLoRA on CPU: fail before work
    job = without_unsafe_packing(job, events.phase)
    if resume is not None:
        job = resumed_job(resume, job, redact_mapping)
    started = time.perf_counter()
    home = tuneforge_home()
    name = home_dir("runs", _run_name(job), "tracking.run_name").name  # one plain name: no '../' escape
    run_dir = Path(job.trainer.output_dir or home / "runs" / name).resolve()
    check_before_work(job, run_dir, overwrite=overwrite or resume is not None)  # dir, model, tracking
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        save_config(job, run_dir / CONFIG_FILE)
    job = with_mode_sources(job, run_dir / "modes")  # `modes:` compiled to JSONL train files (else unchanged)

    events.phase("validating data")
    plan = build_plan(job)
    texts = validate_and_sample_texts(job, plan)
    events.phase("preparing base model and tokenizer")
    base_dir = prepare_base(job.model, texts, run_dir / "base", job.trainer.seed, home / "cache" / "models")
    tok_dir = tokenizer_dir(job.model, base_dir)
    fmt = format_from_job(job, load_tokenizer(tok_dir, job.model.trust_remote_code))
    fmt.write(run_dir)  # checkpoints and exports under run_dir are scored with it (find_format)

    uri = resolve_tracking_uri(job.tracking.uri)
    run_tags = {"tuneforge.method": job.method.name, FORMAT_TAG: fmt.to_json(), **model_trust_tags(job.model)}
    if resume is None:
        run_id = start_run(uri, job.tracking.experiment, name, tags=run_tags)
        record = RunRecord(run_id, name, job.tracking.experiment)
    else:
        record = resume.record
        record.resumes += 1
        run_id = start_run(uri, job.tracking.experiment, name, run_id=record.run_id)
        set_tags(run_id, {"tuneforge.resumes": str(record.resumes), **_resume_tags(job)})
    record.status = "RUNNING"
    record.write(run_dir)
    status = "FAILED"
    try:
        if resume is None:  # params are write-once in MLflow; a resume records its changes as tags
            log_params_flat(run_id, job.model_dump(mode="json"))
            log_dict_artifact(run_id, job.model_dump(mode="json"), "config/job.yaml")
        events.phase("starting Ray")
        ensure_ray(job, verbose)
        check_cluster_fits(job)  # a worker group the cluster cannot place fails now, not never
        events.phase("tokenizing and packing with Ray Data")
        data = build_datasets(job, str(tok_dir), plan)
        if data.cache_hit:
            events.phase(f"reused tokenized data from the cache ({Path(data.cache_dir or '').name})")
        stats = {k: round(v, 6) if isinstance(v, float) else v for k, v in data.stats.items()}
        log_params_flat(run_id, {"data_stats": stats})
        log_dict_artifact(run_id, data.report, "data/report.json")  # per-source numbers, skipped records
        steps = total_steps_for(job, int(data.stats["train_blocks"]))

        d = job.distributed
        ray_name, resume_from = name, None
        if resume is not None:
            ray_name, resume_from = _resume_point(resume, run_dir, name, events)
        trainer = make_trainer(
            job,
            base_dir=base_dir,
            tok_dir=tok_dir,
            data=data,
            total_steps=steps,
            tracking_uri=uri,
            run_id=run_id,
            name=ray_name,
            storage_path=run_dir / "ray",
            resume_from=resume_from,
        )
        events.phase(f"training: {d.num_workers} workers, ZeRO-{d.zero_stage}, {job.method.name}")
        events.training_started(uri, run_id, steps)
        try:
            result = trainer.fit()
        except ray.train.TrainingFailedError as exc:
            raise TrainingFailed(
                f"training failed ({_root_cause(exc)}) after {d.max_failures} allowed restart(s); "
                f"the run is resumable: tuneforge train <config> --resume {run_dir}"
            ) from exc
        finally:
            events.training_finished()
        metrics = result.metrics or {}
        ckpt = Path(result.checkpoint.path)

        events.phase("logging and registering the model")
        holdout = write_holdout(job, plan, run_dir / "eval.jsonl")
        tags = lineage_tags(job, run_id, file_hash(holdout), fmt)
        logged = _log_result(job, run_id, ckpt, base_dir, run_dir, tags, events)
        status = "FINISHED"
        record.status = status
        record.write(run_dir)
        summary = RunSummary(
            run_id=run_id,
            registered_model=logged.registered_name,
            version=logged.version,
            eval_loss_before=float(metrics["eval_loss_before"]),
            eval_loss_after=float(metrics["eval_loss"]),
            train_tokens=int(metrics["train_tokens"]),
            tokens_per_second=float(metrics["tokens_per_second"]),
            checkpoint=str(ckpt),
            model_uri=logged.model_uri,
            run_dir=str(run_dir),
            tracking_uri=redact_uri(uri),
            ui_command=ui_command(uri),
            steps=int(metrics["step"]),
            wall_seconds=round(time.perf_counter() - started, 1),
        )
    finally:
        end_run(status)
    if job.registry.promote and logged.version:
        events.phase("promotion gate: candidate vs champion on the held-out split")
        decision = promote(
            logged.registered_name,
            logged.version,
            str(holdout),
            uri,
            job.registry.promote_metric,
            job.registry.min_delta,
        )
        summary.promotion = decision.to_dict()
    return summary


__all__ = ["RunSummary", "RunEvents", "run_job", "total_steps_for", "validate_and_sample_texts"]
