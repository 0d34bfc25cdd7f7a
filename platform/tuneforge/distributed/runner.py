"""The driver of one fine-tuning run: data -> Ray Train + DeepSpeed -> MLflow model + registry.

``run_job`` is what ``tuneforge train`` and ``jobs/finetune.py`` call. It runs on the Ray head (or
the submitting machine): it validates data, materialises the base model, prepares Ray datasets,
fits a ``TorchTrainer``, then logs and registers the trained model from the final checkpoint. The
stages are distributed/stages.py's, which every sweep trial runs too; this module adds what only a
run has: its directory, its MLflow run (reopened by ``--resume``) and its summary.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from tuneforge.config import JobConfig, save_config
from tuneforge.data.trained_format import FORMAT_TAG
from tuneforge.distributed.cluster import ensure_ray, quiet_libraries
from tuneforge.distributed.job_data import job_datasets, job_holdout
from tuneforge.distributed.preflight import check_before_work, check_cluster_fits, check_memory_fits
from tuneforge.distributed.stages import (
    attempt_name,
    fit,
    gate,
    log_model,
    prepare,
    resume_point,
    total_steps_for,
    without_unsafe_packing,
)
from tuneforge.evaluation.evaluate import file_hash
from tuneforge.models.base import model_trust_tags
from tuneforge.models.methods import check_method_available
from tuneforge.paths import tuneforge_home
from tuneforge.tracking import (
    end_run,
    home_dir,
    log_dict_artifact,
    log_params_flat,
    redact_mapping,
    redact_uri,
    set_tags,
    start_run,
    ui_command,
)
from tuneforge.training.resume import CONFIG_FILE, ResumeTarget, RunRecord, resumed_job


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
    #: wall clock (``time.time()``) at each phase boundary of the run, the driver's and rank 0's
    #: (``worker_*``, ``first_step``): what ``tuneforge bench`` breaks the time to the first step into
    phases: dict[str, float] | None = None
    worker_peak_rss_bytes: float | None = None  # rank 0's peak resident memory, from its final report

    def to_dict(self) -> dict:
        return asdict(self)


def _run_name(job: JobConfig) -> str:
    return job.tracking.run_name or f"{job.method.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _claim_run_name(runs: Path, base: str) -> str:
    """An automatic run name no other command holds, claimed by an atomic ``mkdir``.

    Two ``train`` commands of one method started in the same second get the same timestamped name;
    without the claim they would share one run directory (and its checkpoints) unnoticed.
    """
    runs.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        name = base if n == 1 else f"{base}-{n}"
        try:
            (runs / name).mkdir()
        except FileExistsError:
            continue
        return name
    raise AssertionError("unreachable")


def _resume_tags(job: JobConfig) -> dict[str, str]:
    """What a resumption ran with (its worker count may differ from the run's logged params)."""
    d, t = job.distributed, job.trainer
    return {
        "tuneforge.resume.num_workers": str(d.num_workers),
        "tuneforge.resume.grad_accum": str(t.grad_accum),
        "tuneforge.resume.max_steps": str(t.max_steps),
    }


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
    phases = {"run_start": time.time()}
    home = tuneforge_home()
    name = home_dir("runs", _run_name(job), "tracking.run_name").name  # one plain name: no '../' escape
    if resume is None and not job.tracking.run_name and not job.trainer.output_dir:
        name = _claim_run_name(home / "runs", name)
    run_dir = Path(job.trainer.output_dir or home / "runs" / name).resolve()
    check_before_work(job, run_dir, overwrite=overwrite or resume is not None)  # dir, model, tracking
    job = check_memory_fits(job, None, events.phase)  # auto stage/micro-batch; unfit: refused now
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        save_config(job, run_dir / CONFIG_FILE)
    prepared = prepare(job, run_dir, events.phase)
    job, uri = prepared.job, prepared.uri

    fmt_tag = {FORMAT_TAG: prepared.fmt.to_json()}
    run_tags = {"tuneforge.method": job.method.name, **fmt_tag, **model_trust_tags(job.model)}
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
        phases["ray_start"] = time.time()
        ensure_ray(job, verbose)
        check_cluster_fits(job)  # a worker group the cluster cannot place fails now, not never
        phases["ray_ready"] = time.time()
        events.phase("tokenizing and packing with Ray Data")
        data = job_datasets(job, prepared.plan, prepared.tok_dir, prepared.base_dir)
        if data.cache_hit:
            events.phase(f"reused tokenized data from the cache ({Path(data.cache_dir or '').name})")
        stats = {k: round(v, 6) if isinstance(v, float) else v for k, v in data.stats.items()}
        log_params_flat(run_id, {"data_stats": stats})
        log_dict_artifact(run_id, data.report, "data/report.json")  # per-source numbers, skipped records
        steps = total_steps_for(job, int(data.stats["train_blocks"]))  # too little data: refused here
        phases["data_ready"] = time.time()

        storage = run_dir / "ray"
        resume_from = None
        if resume is not None:
            resume_from = resume_point(storage, name, events.phase, resume.checkpoint)
            if resume_from is None:
                raise ValueError(
                    f"--resume {run_dir}: no complete resumable checkpoint "
                    "(set trainer.checkpoint_every to save them)"
                )
            events.phase(f"resuming from {resume_from.name}")
        d = job.distributed
        events.phase(f"training: {d.num_workers} workers, ZeRO-{d.zero_stage}, {job.method.name}")
        events.training_started(uri, run_id, steps)
        phases["fit_start"] = time.time()
        try:
            result = fit(
                job,
                prepared,
                data,
                run_id=run_id,
                name=attempt_name(name, record.resumes if resume is not None else 0),
                storage_root=storage,
                resume_from=resume_from,
                hint=f"the run is resumable: tuneforge train <config> --resume {run_dir}",
            )
        finally:
            events.training_finished()
        metrics = result.metrics or {}
        phases["fit_end"] = time.time()
        phases.update(worker_phases(metrics))
        assert result.checkpoint is not None  # the training loop reports its final checkpoint
        ckpt = Path(result.checkpoint.path)

        events.phase("logging and registering the model")
        holdout = job_holdout(job, prepared.plan, run_dir / "eval.jsonl")
        logged = log_model(job, prepared, run_id, ckpt, run_dir, events.phase, eval_hash=file_hash(holdout))
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
            phases=phases,
            worker_peak_rss_bytes=metrics.get("peak_rss_bytes"),
        )
    finally:
        end_run(status)
    if job.registry.promote and logged.version:
        events.phase("promotion gate: candidate vs champion on the held-out split")
        summary.promotion = gate(job, logged, holdout, uri)
    phases["end"] = time.time()
    return summary


def worker_phases(metrics: dict) -> dict[str, float]:
    """Rank 0's phase timestamps from its final report: ``phase_<name>_unix`` and the loop's
    ``first_step_unix`` (absent when the worker or loop did not send them)."""
    out = {
        k.removeprefix("phase_").removesuffix("_unix"): float(v)
        for k, v in metrics.items()
        if k.startswith("phase_")
    }
    if "first_step_unix" in metrics:
        out["first_step"] = float(metrics["first_step_unix"])
    return out


__all__ = ["RunSummary", "RunEvents", "run_job", "total_steps_for", "worker_phases"]
