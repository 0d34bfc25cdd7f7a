"""The per-worker step loop: forward, backward, step, evaluate, log, checkpoint.

It knows nothing about Ray: batches arrive through ``train_batches(epoch)`` / ``eval_batches()``
callables and results leave through a ``Reporter``. The Ray glue supplies both, tests can too.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from tuneforge.config import JobConfig
from tuneforge.data import to_model_inputs
from tuneforge.models.freeze import on_optimizer_step
from tuneforge.training.checkpoint import TrainerState, probe_logits, save_checkpoint
from tuneforge.training.early_stopping import EarlyStopper
from tuneforge.training.engine import seed_everything

Batch = Mapping[str, torch.Tensor]


class Reporter(Protocol):
    """Where metrics and checkpoints go. All ranks call ``report`` the same number of times."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Rank-0 metric logging (MLflow); may be a no-op."""

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        """Hand metrics (+ a checkpoint from rank 0) to the orchestrator; a barrier across ranks."""


@dataclass
class LoopResult:
    """What the loop measured, identical on every rank (reduced across the group)."""

    eval_loss_before: float
    eval_loss_after: float
    train_tokens: int
    tokens_per_second: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    best_eval_loss: float = math.nan


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def _to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(engine: Any, batches: Iterable[Batch], device: torch.device) -> float:
    """Token-weighted mean loss over all ranks' eval shards.

    Each rank must see the same number of batches (the shards are split equally): under ZeRO-3
    a forward pass gathers parameters collectively.
    """
    engine.eval()
    loss_sum = n_tokens = 0.0
    for batch in batches:
        inputs = to_model_inputs(_to_device(batch, device))
        n = float((inputs["labels"][:, 1:] != -100).sum())
        if n == 0:
            continue
        loss_sum += float(engine(**inputs).loss.float()) * n
        n_tokens += n
    engine.train()
    total_loss, total_tokens = _all_reduce_sum([loss_sum, n_tokens], device)
    return total_loss / total_tokens if total_tokens else math.nan


def run_loop(
    engine: Any,
    tokenizer: Any,
    job: JobConfig,
    *,
    rank: int,
    total_steps: int,
    train_batches: Callable[[int], Iterable[Batch]],
    eval_batches: Callable[[], Iterable[Batch]],
    reporter: Reporter,
    device: torch.device,
    config_hash: str,
) -> LoopResult:
    """Train for ``total_steps`` optimizer steps (fewer if early stopping fires), cycling epochs.

    The final checkpoint is saved and reported either way; the final metrics carry ``stopped_early``
    (0/1) and ``best_eval_loss`` (the lowest eval loss seen, the pre-training one included).
    The RNGs are re-seeded here so that dropout draws do not depend on how many random numbers
    model building consumed (LoRA init, say): same seed, same data -> same loss trajectory.
    """
    t = job.trainer
    seed_everything(t.seed, t.deterministic)
    stopper = EarlyStopper.from_config(t.early_stopping)
    stage = job.distributed.zero_stage
    vocab = int(engine.module.config.vocab_size)
    eval_before = evaluate(engine, eval_batches(), device)
    reporter.log({"eval_loss": eval_before}, 0)
    history: list[dict[str, float]] = [{"step": 0, "eval_loss": eval_before}]
    if stopper is not None:
        stopper.update(eval_before)

    step = epoch = batches_in_epoch = 0
    tokens = window_tokens = 0.0
    window_loss: list[float] = []
    train_time = 0.0
    last_eval = eval_before
    tick = time.perf_counter()

    def log_window() -> None:
        """Reduce the losses/tokens since the last log across ranks (a collective) and log them."""
        nonlocal tokens, train_time, tick, window_loss, window_tokens
        train_time += time.perf_counter() - tick
        tick = time.perf_counter()
        loss_sum, n_loss, tok = _all_reduce_sum([sum(window_loss), len(window_loss), window_tokens], device)
        tokens += tok
        metrics = {
            "train_loss": loss_sum / max(n_loss, 1),
            "lr": float(engine.get_lr()[0]),
            "tokens_per_second": tokens / max(train_time, 1e-9),
            "epoch": float(epoch),
        }
        window_loss, window_tokens = [], 0.0
        reporter.log(metrics, step)
        history.append({"step": float(step), **metrics})

    engine.train()
    while step < total_steps and not (stopper and stopper.stopped):
        batches_in_epoch = 0
        tick = time.perf_counter()
        for batch in train_batches(epoch):
            on_optimizer_step(engine.module, step)  # gradual unfreezing (freeze method); else no-op
            inputs = to_model_inputs(_to_device(batch, device))
            loss = engine(**inputs).loss
            engine.backward(loss)
            # Ask before step(): DeepSpeed advances its micro-step counter at the end of step(), so
            # asking afterwards answers for the *next* micro-batch (off by one when grad_accum > 1).
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            batches_in_epoch += 1
            window_tokens += float(
                inputs["input_ids"].numel()
                if "attention_mask" not in inputs
                else inputs["attention_mask"].sum()
            )
            window_loss.append(float(loss.detach()))
            if not boundary:
                continue
            step += 1
            if step % max(t.log_every, 1) == 0 or step == total_steps:
                log_window()
            if t.eval_every and step % t.eval_every == 0 and step < total_steps:
                if window_loss:
                    # Flush first, so the report's train_tokens counts every step so far: a token
                    # budget (tune/budget.py) sums them, and a stale count let sweeps overrun it.
                    log_window()
                paused = time.perf_counter()
                last_eval = evaluate(engine, eval_batches(), device)
                reporter.log({"eval_loss": last_eval}, step)
                history.append({"step": float(step), "eval_loss": last_eval})
                if not (t.checkpoint_every and step % t.checkpoint_every == 0):
                    # One report per evaluation: what a scheduler such as ASHA ranks trials by.
                    reporter.report(
                        {"step": float(step), "eval_loss": last_eval, "train_tokens": tokens}, None
                    )
                tick += time.perf_counter() - paused  # evaluation time is not training time
                if stopper is not None and stopper.update(last_eval):
                    if window_loss:  # same on every rank: all ranks step in lockstep
                        log_window()
                    break  # identical on every rank: last_eval is all-reduced
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < total_steps:
                paused = time.perf_counter()
                _checkpoint_and_report(
                    engine,
                    tokenizer,
                    rank,
                    stage,
                    TrainerState(step, epoch, batches_in_epoch, config_hash),
                    {"step": float(step), "eval_loss": last_eval},
                    reporter,
                    vocab,
                    device,
                )
                tick += time.perf_counter() - paused
            if step >= total_steps:
                break
        train_time += time.perf_counter() - tick
        if batches_in_epoch == 0:
            raise RuntimeError("the training data yielded no batch: the dataset is smaller than one batch")
        epoch += 1

    stopped = bool(stopper and stopper.stopped)
    # Stopped early: the weights are those just evaluated, so that value is the final one.
    eval_after = last_eval if stopped else evaluate(engine, eval_batches(), device)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h] + [eval_after]
    best = min((v for v in evals if not math.isnan(v)), default=math.nan)
    tps = tokens / max(train_time, 1e-9)
    final = {
        "step": float(step),
        "eval_loss": eval_after,
        "eval_loss_before": eval_before,
        "train_tokens": tokens,
        "tokens_per_second": tps,
        "stopped_early": float(stopped),
        "best_eval_loss": best,
    }
    reporter.log({"eval_loss": eval_after, "stopped_early": float(stopped), "best_eval_loss": best}, step)
    if not stopped:
        history.append({"step": float(step), "eval_loss": eval_after})
    _checkpoint_and_report(
        engine,
        tokenizer,
        rank,
        stage,
        TrainerState(step, max(epoch - 1, 0), batches_in_epoch, config_hash),
        final,
        reporter,
        vocab,
        device,
    )
    return LoopResult(eval_before, eval_after, int(tokens), tps, step, history, stopped, best)


def _checkpoint_and_report(
    engine: Any,
    tokenizer: Any,
    rank: int,
    stage: int,
    state: TrainerState,
    metrics: dict[str, float],
    reporter: Reporter,
    vocab: int,
    device: torch.device,
) -> None:
    """Save (collective), hand the directory to the reporter, then drop the local staging copy."""
    probe = probe_logits(engine.module, vocab, device)
    staging = Path(tempfile.mkdtemp(prefix="tuneforge-ckpt-")) if rank == 0 else None
    target = staging / f"step_{state.step:07d}" if staging else None
    saved = save_checkpoint(engine, tokenizer, target, rank=rank, zero_stage=stage, state=state, probe=probe)
    try:
        reporter.report(metrics, saved)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
