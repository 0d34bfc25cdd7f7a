"""tuneforge's full path, as ``tuneforge train`` runs it: Ray Data -> Ray Train -> DeepSpeed -> MLflow.

``run_full`` calls ``distributed.runner.run_job`` (the machinery of ``tuneforge train``) in a fresh
process, so the time to the first optimizer step counts what a user's command pays: imports, Ray start,
data, the worker group, tokenizer, model, engine, first batch. Throughput is the loop's own
``window_tokens_per_second`` of each log window (one window = ``BenchSettings.window`` steps), read
back from the run's MLflow store, windows inside the warm-up dropped as for every other path.
"""

from __future__ import annotations

import time
from typing import Any

from tuneforge.bench.plain_loop import peak_rss_bytes
from tuneforge.config import config_from_dict
from tuneforge.tracking.client import TrackingClient

#: phase -> (from, to) timestamps of ``RunSummary.phases`` (``command`` is the bench's own start)
PHASES = (
    ("imports and set-up", "command", "run_start"),
    ("data validation, base model, tokenizer (driver)", "run_start", "ray_start"),
    ("Ray start", "ray_start", "ray_ready"),
    ("data (Ray Data tokenize + pack, or cache)", "ray_ready", "data_ready"),
    ("worker group start", "fit_start", "worker_start"),
    ("tokenizer (worker)", "worker_start", "tokenizer"),
    ("model (worker)", "tokenizer", "model"),
    ("engine (DeepSpeed)", "model", "engine"),
    ("first batch + first step", "engine", "first_step"),
)


def phase_seconds(phases: dict[str, float]) -> dict[str, float | None]:
    """Seconds of each phase of ``PHASES`` (None where a timestamp is missing) and the totals."""
    out: dict[str, float | None] = {}
    for name, a, b in PHASES:
        out[name] = phases[b] - phases[a] if a in phases and b in phases else None
    start = phases.get("command")
    out["to first step"] = phases["first_step"] - start if start and "first_step" in phases else None
    out["to end"] = phases["end"] - start if start and "end" in phases else None
    return out


def window_history(tracking_uri: str, run_id: str) -> list[tuple[int, float]]:
    """(last step of the window, tokens/s of that window) for every log window the loop logged."""
    points = TrackingClient(tracking_uri).metric_history(run_id, "window_tokens_per_second")
    return [(p.step, p.value) for p in points if p.step > 0]


def run_full(job_raw: dict[str, Any], command_start: float) -> dict[str, Any]:
    """Run the job through ``run_job``; the run summary, its phases and the loop's window rates."""
    import ray

    from tuneforge.distributed.runner import run_job

    job = config_from_dict(job_raw)
    try:
        summary = run_job(job)
    finally:
        ray.shutdown()
    phases = {"command": command_start, **(summary.phases or {})}
    uri = job.tracking.uri or ""
    return {
        "summary": summary.to_dict(),
        "phases": phases,
        "phase_seconds": phase_seconds(phases),
        "windows": window_history(uri, summary.run_id),
        "peak_rss_bytes_rank0": summary.worker_peak_rss_bytes,
        "driver_peak_rss_bytes": peak_rss_bytes(),
        "finished_unix": time.time(),
    }
