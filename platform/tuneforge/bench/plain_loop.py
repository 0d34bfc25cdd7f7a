"""The reference: a plain single-process PyTorch loop over the benchmark's batches (packed or padded).

The same AdamW parameter groups, LR schedule and gradient clipping as the engine
(``training/engine.py``'s builders, as ``tuneforge.testing.reference_train``), the same base weights
as the full path, one forward/backward per global batch; each optimizer step is timed on its own so
the windows are cut the same way as every other path's.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import config_from_dict
from tuneforge.data import to_model_inputs
from tuneforge.models.factory import load_model
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


def run_plain(
    job_raw: dict[str, Any],
    base_dir: str,
    batches: list[dict[str, torch.Tensor]],
    steps: int,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """Train ``steps`` steps over ``batches`` (cycling); per-step seconds, losses and peak memory."""
    quiet()
    job = config_from_dict(job_raw)
    device = bench_device(use_gpu)
    torch.manual_seed(job.trainer.seed)
    model = load_model(Path(base_dir), job.model, use_gpu)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() narrowly
    model.config.use_cache = False
    optimizer = build_optimizer(model, job.trainer.lr, job.trainer.weight_decay)
    scheduler = build_scheduler(optimizer, job.trainer, steps)
    model.train()
    seconds: list[float] = []
    losses: list[torch.Tensor] = []
    for step in range(steps):
        started = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in batches[step % len(batches)].items()}
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
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
