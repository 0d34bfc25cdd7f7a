"""The reference: a plain single-process PyTorch loop over the benchmark's batches (packed or padded).

The same AdamW parameter groups, LR schedule and gradient clipping as the engine
(``training/engine.py``'s builders, as ``tuneforge.testing.reference_train``), the same base weights
as the full path, one forward/backward per global batch; each optimizer step is timed on its own so
the windows are cut the same way as every other path's.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import JobConfig, config_from_dict
from tuneforge.data import to_model_inputs
from tuneforge.models.factory import load_model
from tuneforge.models.precision import autocast_dtype
from tuneforge.training.engine import build_optimizer, build_scheduler


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def quiet() -> None:
    """No library progress bars in a bench process (loading weights, writing shards)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def bench_device(use_gpu: bool) -> torch.device:
    return torch.device("cuda", 0) if use_gpu and torch.cuda.is_available() else torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class LoopSetup:
    """What a single-process path trains with: the job, its device, model, optimizer and schedule, and
    the job's autocast dtype (``model.dtype: bf16-mixed``, or ``auto`` on a bf16 CPU), so that these
    paths compute in the precision the full path's engine does."""

    job: JobConfig
    device: torch.device
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: torch.dtype | None


def setup_loop(job_raw: dict[str, Any], base_dir: str, steps: int, use_gpu: bool) -> LoopSetup:
    """The base weights, tuneforge's AdamW groups and LR schedule, seeded as the full path is."""
    quiet()
    job = config_from_dict(job_raw)
    device = bench_device(use_gpu)
    torch.manual_seed(job.trainer.seed)
    model = load_model(Path(base_dir), job.model, use_gpu)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() narrowly
    model.config.use_cache = False
    optimizer = build_optimizer(model, job.trainer.lr, job.trainer.weight_decay)
    scheduler = build_scheduler(optimizer, job.trainer, steps)
    return LoopSetup(job, device, model, optimizer, scheduler, autocast_dtype(job.model.dtype, use_gpu))


def process_stats(device: torch.device) -> dict[str, Any]:
    """Peak memory, threads and device of this bench process (each path runs in its own)."""
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def run_plain(
    job_raw: dict[str, Any],
    base_dir: str,
    batches: list[dict[str, torch.Tensor]],
    steps: int,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """Train ``steps`` steps over ``batches`` (cycling); per-step seconds, losses and peak memory."""
    s = setup_loop(job_raw, base_dir, steps, use_gpu)
    model, optimizer, scheduler, device, job = s.model, s.optimizer, s.scheduler, s.device, s.job
    model.train()
    seconds: list[float] = []
    losses: list[torch.Tensor] = []
    for step in range(steps):
        started = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in batches[step % len(batches)].items()}
        with torch.autocast(device.type, dtype=s.autocast, enabled=s.autocast is not None):
            loss = model(**to_model_inputs(batch)).loss
        loss.backward()
        if job.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.trainer.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        _sync(device)
        seconds.append(time.perf_counter() - started)
    return {
        "step_seconds": seconds,
        "losses": [float(x) for x in losses],
        **process_stats(device),
    }
