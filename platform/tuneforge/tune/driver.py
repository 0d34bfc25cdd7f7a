"""Run a strategy sweep: Ray Tune over Ray Train, one MLflow parent run with a child run per trial.

Ray 2.60's supported shape for Tune over Train V2 is a *function trainable* per trial that builds a
``TorchTrainer`` and calls ``fit()``, with ``TuneReportCallback`` forwarding every rank-0 report to
Tune (so ASHA sees each evaluation). Tune does not count the Train workers' resources, so the trial
driver takes a sliver of CPU and concurrency is bounded explicitly by what the workers need.

Over 300 lines on purpose: one sequence (prepare, tokenize once, Tune, close child runs, summarise,
register) read top to bottom; a trial itself is ``tune/trial_run.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from tuneforge.config import JobConfig, PromptTuningMethod
from tuneforge.distributed import stages
from tuneforge.distributed.cluster import ensure_ray, quiet_libraries
from tuneforge.distributed.data_pipeline import PreparedData
from tuneforge.distributed.job_data import job_datasets, job_holdout
from tuneforge.distributed.mix_data import MixSources, prepare_mix_sources
from tuneforge.distributed.preflight import on_local_instance
from tuneforge.distributed.runner import RunEvents
from tuneforge.distributed.stages import without_unsafe_packing
from tuneforge.distributed.threads import with_trial_threads
from tuneforge.models.base import model_trust_tags
from tuneforge.models.method_traits import supports_packing
from tuneforge.tracking import (
    TrackingClient,
    end_run,
    home_dir,
    log_artifacts,
    log_params_flat,
    reopen_run,
    start_run,
)
from tuneforge.tune.budget import TokenBudgetStopper
from tuneforge.tune.config import SweepConfig, evaluations_per_trial
from tuneforge.tune.domains import build_param_space, build_scheduler, build_search_alg
from tuneforge.tune.pareto import pareto_front, render_pareto_table, save_pareto_plot
from tuneforge.tune.row_layout import check_row_layouts
from tuneforge.tune.space import resolve_trial_config
from tuneforge.tune.trial_run import TRIAL_TAG, TrialInputs, run_trial, trial_job

_PROMPT_PLACEHOLDER = PromptTuningMethod(name="prompt_tuning")  # only to derive the padded data job


@dataclass
class SweepSummary:
    """What ``tuneforge sweep --json`` prints as its last line."""

    parent_run_id: str
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    sweep_dir: str
    pareto_plot: str | None
    registered_model: str | None = None
    version: str | None = None
    promotion: dict[str, Any] | None = None
    table: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "table"}


def _concurrency(job: JobConfig, sweep: SweepConfig) -> int:
    """Trials at once: what the user set, else what the cluster's CPUs hold after one CPU for data."""
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    d = job.distributed
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, math.floor((cpus - 1) / (d.num_workers * d.cpus_per_worker)))


def _trial_records(
    results: Sequence[tune.Result], sweep: SweepConfig, max_t: int | None, budget_hit: bool = False
) -> list[dict[str, Any]]:
    """One row per trial: strategy, best reported metric, status (and why it stopped), iterations, costs.

    A trial with fewer reports than a full one (``max_t``) was stopped early: by ASHA, or by the
    sweep's token/time budget when that ran out.
    """
    records = []
    for r in results:
        params = resolve_trial_config(r.config or {})
        df = r.metrics_dataframe
        values = df[sweep.metric].dropna() if df is not None and sweep.metric in df else None
        metric = (
            (float(values.min()) if sweep.direction == "min" else float(values.max()))
            if values is not None and len(values)
            else None
        )
        last = r.metrics or {}
        iterations = int(last.get("training_iteration", 0))
        status = (
            "failed"
            if r.error
            else ("completed" if max_t is None or iterations >= max_t else "early-stopped")
        )
        reason = None
        if status == "early-stopped":
            reason = "budget" if budget_hit or sweep.scheduler.name != "asha" else "asha"
        ckpt = last.get("checkpoint_path") if status == "completed" else None
        records.append(
            {
                "trial_id": r.metrics.get("trial_id") if r.metrics else None,
                "method": params.get("method.name"),
                "params": params,
                "metric": metric,
                "status": status,
                "stop_reason": reason,
                "iterations": iterations,
                "trainable_params": last.get("trainable_params"),
                "train_tokens": last.get("train_tokens"),
                "wall_s": last.get("time_total_s"),
                "peak_mem_bytes": last.get("peak_rss_bytes"),
                "checkpoint": ckpt,
                "adapter_bytes": _weights_bytes(ckpt) if ckpt else None,
            }
        )
    return records


def _weights_bytes(ckpt: str) -> int:
    """Size on disk of what the method saves (adapter weights, or full weights for full/freeze)."""
    return sum(p.stat().st_size for p in Path(ckpt).glob("*.safetensors"))


def _close_child_runs(
    uri: str, experiment_id: str, parent_run_id: str, records: list[dict[str, Any]]
) -> None:
    """Runs of trials ASHA stopped stay RUNNING unless the driver closes them; record every status."""
    client = TrackingClient(uri)
    status_by_trial = {r["trial_id"]: r["status"] for r in records}
    for run in client.child_runs(parent_run_id, experiment_id):
        status = status_by_trial.get(run.tags.get(TRIAL_TAG), "failed")
        client.set_tags(run.run_id, {"tuneforge.trial_status": status})
        for rec in records:
            if rec["trial_id"] == run.tags.get(TRIAL_TAG):
                rec["run_id"] = run.run_id
        # stopped by ASHA, failed, or an attempt cut off by an interrupt
        client.close_if_running(run.run_id, "FAILED" if status == "failed" else "KILLED")


def run_sweep(
    job: JobConfig,
    sweep: SweepConfig,
    *,
    name: str,
    resume: bool = False,
    verbose: bool = False,
    events: RunEvents | None = None,
) -> SweepSummary:
    """Prepare data and base once, run the Tune sweep, then rank, plot and register the best trial."""
    quiet_libraries(verbose)
    say = events.phase if events is not None else (lambda _m: None)
    sweep_dir = home_dir("sweeps", name, "--name").resolve()
    if sweep_dir.exists() and not resume:
        raise ValueError(f"sweep '{name}' already exists at {sweep_dir}; pass --resume or another name")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    prepared = stages.prepare(job, sweep_dir, say)
    job, plan, uri = prepared.job, prepared.plan, prepared.uri
    parent_file = sweep_dir / "parent_run_id"
    if resume and parent_file.exists():  # reopen the same parent run so children stay grouped
        parent_run_id = reopen_run(uri, parent_file.read_text().strip())
    else:
        tags = {"tuneforge.sweep": name, **model_trust_tags(job.model)}
        parent_run_id = start_run(uri, job.tracking.experiment, name, tags=tags)
    parent_file.write_text(parent_run_id)
    experiment_id = TrackingClient(uri).experiment_of(parent_run_id)
    status = "FAILED"
    try:
        log_params_flat(parent_run_id, {"search": sweep.model_dump(mode="json", exclude={"space"})})
        (sweep_dir / "space.json").write_text(json.dumps(sweep.space, indent=2, default=str))
        say("starting Ray")
        ensure_ray(job, verbose)
        space = sweep.search_space(job)
        searches_mix = any(k.startswith("data.mix.") for k in space.layout())
        if any(k.startswith("data.") and not k.startswith("data.mix.") for k in space.layout()):
            raise ValueError(
                "search.space: data keys other than the mix (data.mix.<name>) change the tokenized "
                "data itself; run one sweep per data setting instead"
            )
        check_row_layouts(job, space)  # one tokenized dataset serves every trial
        packings = {job.data.packing}
        if job.data.packing and any(not supports_packing(b.name) for b in space.branches):
            packings.add(False)
        variants = {
            p: job if p == job.data.packing
            else without_unsafe_packing(job.model_copy(update={"method": _PROMPT_PLACEHOLDER}), say)
            for p in packings
        }  # fmt: skip
        shared: dict[bool, PreparedData] = {}
        mix: dict[bool, MixSources] = {}
        for packing, variant in variants.items():
            if searches_mix:
                say("tokenizing each train source once for all mixes (Ray Data, cached)")
                mix[packing] = prepare_mix_sources(variant, str(prepared.tok_dir))
            else:
                say("tokenizing once for all trials (Ray Data, cached)")
                shared[packing] = job_datasets(
                    variant, plan, prepared.tok_dir, prepared.base_dir, materialize=True
                )
        sweep = sweep.model_copy(update={"max_concurrent_trials": _concurrency(job, sweep)})
        if on_local_instance():  # trials share this machine's cores (a cluster's nodes: each its own)
            job = with_trial_threads(job, sweep.max_concurrent_trials or 1)
        inputs = TrialInputs(uri, experiment_id, parent_run_id, prepared, sweep_dir, shared, mix)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, base=job.model_dump(mode="json"), inputs=inputs), {"CPU": 0.01}
        )
        tune_config = tune.TuneConfig(
            metric=sweep.metric,
            mode=sweep.direction,  # Ray Tune's name for it
            num_samples=sweep.num_samples,
            scheduler=build_scheduler(sweep, job),
            search_alg=build_search_alg(sweep, seed=sweep.seed or job.trainer.seed),
            time_budget_s=sweep.time_budget_s,
        )
        stopper = TokenBudgetStopper(sweep.max_total_tokens) if sweep.max_total_tokens else None
        storage = str(sweep_dir / "tune")
        if resume and tune.Tuner.can_restore(f"{storage}/{name}"):
            tuner = tune.Tuner.restore(
                f"{storage}/{name}",
                trainable=trainable,
                resume_errored=True,
                param_space=build_param_space(sweep, job),
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=build_param_space(sweep, job),
                tune_config=tune_config,
                run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, stop=stopper),
            )
        say(
            f"sweeping: {sweep.num_samples} trials, up to {sweep.max_concurrent_trials} at once, "
            f"scheduler {sweep.scheduler.name}"
        )
        results = tuner.fit()
        # ResultGrid iterates through __getitem__/__len__, which mypy does not treat as iterable
        trials = [results[i] for i in range(len(results))]
        spent = sum(float((r.metrics or {}).get("train_tokens") or 0) for r in trials)
        budget_hit = bool(sweep.max_total_tokens and spent >= sweep.max_total_tokens)
        records = _trial_records(trials, sweep, evaluations_per_trial(job), budget_hit)
        _close_child_runs(uri, experiment_id, parent_run_id, records)
        summary = _summarise(records, sweep, sweep_dir, parent_run_id)
        log_artifacts(parent_run_id, str(sweep_dir / "report"), "sweep")
        status = "FINISHED"
    finally:
        end_run(status)
    if summary.best and summary.best.get("checkpoint") and job.registry.model_name:
        say(f"registering the best trial as a challenger of '{job.registry.model_name}'")
        from tuneforge.tune.register import register_best

        best_job = trial_job(job.model_dump(mode="json"), summary.best["params"])
        logged = register_best(summary.best, best_job, prepared, sweep_dir, parent_run_id)
        summary.registered_model, summary.version = logged.registered_name, logged.version
        if job.registry.promote and logged.version:
            say("promotion gate: the sweep's best vs the champion on the held-out split")
            holdout = job_holdout(job, plan, sweep_dir / "eval.jsonl")
            summary.promotion = stages.gate(best_job, logged, holdout, uri)
    return summary


def _summarise(
    records: list[dict[str, Any]], sweep: SweepConfig, sweep_dir: Path, parent_run_id: str
) -> SweepSummary:
    """Best trial, Pareto front (quality vs trainable parameters), table and plot on disk."""
    scored = [r for r in records if r["metric"] is not None]
    pick = min if sweep.direction == "min" else max
    best = pick(scored, key=lambda r: r["metric"]) if scored else None
    report = sweep_dir / "report"
    report.mkdir(exist_ok=True)
    costed = [r for r in scored if r.get("trainable_params")]
    front = (
        pareto_front(costed, metric="metric", cost="trainable_params", direction=sweep.direction)
        if costed
        else []
    )
    table = (
        render_pareto_table(
            costed, metric="metric", cost="trainable_params", direction=sweep.direction, front=front
        )
        if costed
        else ""
    )
    plot = (
        save_pareto_plot(
            costed,
            report / "pareto.png",
            metric="metric",
            cost="trainable_params",
            direction=sweep.direction,
            front=front,
        )
        if costed
        else None
    )
    (report / "trials.json").write_text(json.dumps(records, indent=2, default=str))
    (report / "pareto.txt").write_text(table)
    keep = ("trial_id", "method", "params", "metric", "status", "stop_reason", "iterations")
    return SweepSummary(
        parent_run_id=parent_run_id,
        trials=[{k: r.get(k) for k in keep} for r in records],
        best={k: best.get(k) for k in (*keep, "checkpoint", "run_id")} if best else None,
        pareto=[
            {
                k: r.get(k)
                for k in (
                    "trial_id",
                    "method",
                    "metric",
                    "trainable_params",
                    "adapter_bytes",
                    "train_tokens",
                    "wall_s",
                )
            }
            for r in front
        ],
        sweep_dir=str(sweep_dir),
        pareto_plot=str(plot) if plot else None,
        table=table,
    )


__all__ = ["SweepSummary", "run_sweep"]
