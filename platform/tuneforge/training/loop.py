"""The per-worker step loop: forward, backward, step, evaluate, log, checkpoint.

It knows nothing about Ray: batches arrive through ``train_batches(epoch)`` / ``eval_batches()``
callables and results leave through a ``Reporter``. The Ray glue supplies both, tests can too.

Over 300 lines on purpose: the step loop, its evaluation/checkpoint cadence and the stop rules
(early stopping, SIGTERM, the step budget) are one state machine; split, its order would be hidden.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from tuneforge.config import TrainerConfig
from tuneforge.models.freeze import on_optimizer_step
from tuneforge.training.checkpoint import SavableTokenizer, probe_logits, save_checkpoint
from tuneforge.training.checkpoint_store import fingerprint
from tuneforge.training.early_stopping import EarlyStopper
from tuneforge.training.engine import TrainingEngine, seed_everything
from tuneforge.training.objectives import TrainingObjective, all_reduce_sum
from tuneforge.training.rng import capture
from tuneforge.training.trainer_state import TrainerState

Batch = Mapping[str, torch.Tensor]


class Reporter(Protocol):
    """Where metrics and checkpoints go. All ranks call ``report`` the same number of times."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Rank-0 metric logging (MLflow); may be a no-op."""

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, name: str | None = None) -> None:
        """Hand metrics (+ this rank's checkpoint folder, ``name`` on storage) onward; a barrier."""


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
    first_step_unix: float = math.nan  # wall clock (``time.time()``) when the first optimizer step ended


def _to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def evaluate(
    engine: TrainingEngine, batches: Iterable[Batch], device: torch.device, objective: TrainingObjective
) -> dict[str, float]:
    """The objective's evaluation (``eval_loss`` + extras); every rank must see as many batches."""
    return objective.evaluate(engine, batches, device)


@dataclass
class _Position:
    """Where the loop stands; what a resumable checkpoint records and a resumed loop starts from."""

    step: int = 0
    epoch: int = 0
    consumed: int = 0  # global micro-batches of ``epoch`` trained (all ranks together)
    tokens: float = 0.0


class BatchLedger:
    """An append-only record of every micro-batch a rank trained: the audit a resume is checked by.

    One JSON line per micro-batch (process id, rank, optimizer step, epoch, global index within the
    epoch, and a fingerprint of its token ids), flushed as written, so that a killed worker's file
    holds everything it trained up to the kill.
    """

    def __init__(self, directory: str | None, rank: int) -> None:
        self.fh = None
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.fh = (Path(directory) / f"rank{rank}.jsonl").open("a")
        self.rank, self.pid = rank, os.getpid()

    def record(self, step: int, epoch: int, index: int, input_ids: torch.Tensor) -> None:
        if self.fh is None:
            return
        fp = fingerprint(input_ids.detach().cpu().contiguous().numpy().tobytes())
        line = {"pid": self.pid, "rank": self.rank, "step": step, "epoch": epoch, "index": index, "fp": fp}
        self.fh.write(json.dumps(line) + "\n")
        self.fh.flush()


def run_loop(
    engine: TrainingEngine,
    tokenizer: SavableTokenizer,
    trainer: TrainerConfig,
    *,
    zero_stage: int,
    objective: TrainingObjective,
    rank: int,
    world: int,
    total_steps: int,
    train_batches: Callable[[int, int], Iterable[Batch]],
    eval_batches: Callable[[], Iterable[Batch]],
    reporter: Reporter,
    device: torch.device,
    config_hash: str,
    start: TrainerState | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> LoopResult:
    """Train for ``total_steps`` optimizer steps (fewer if early stopping fires), cycling epochs.

    ``train_batches(epoch, skip)`` yields this rank's micro-batches of ``epoch`` after the first
    ``skip`` global ones; ``start`` (a resumable checkpoint's state, its DeepSpeed and RNG states
    already loaded) continues a run from its step and data position instead of step 0. Every
    ``checkpoint_every`` steps a resumable checkpoint is reported; when ``stop_requested`` turns
    true on any rank (SIGTERM: a preemption notice) all ranks save one and :class:`Preempted` is
    raised. The final checkpoint is saved and reported either way; the final metrics carry
    ``stopped_early`` (0/1) and ``best_eval_loss`` (the lowest eval loss seen, the pre-training one
    included). ``objective`` (the method's: ``objective_for(job.method)``, ``training/objectives.py``)
    gives each micro-batch's loss and each evaluation's metrics; ``zero_stage`` is the job's
    ``distributed.zero_stage`` (how checkpoints are saved). A fresh run re-seeds the RNGs here so that
    dropout draws do not depend on how many random numbers model building consumed (LoRA init,
    say): same seed, same data -> same losses.
    """
    t = trainer

    extras: dict[str, float] = {}  # the last evaluation's other metrics (reward accuracy, ...)

    def run_eval(step: int) -> float:
        metrics = evaluate(engine, eval_batches(), device, objective)
        reporter.log(metrics, step)
        extras.clear()
        extras.update({k: v for k, v in metrics.items() if k != "eval_loss"})
        return metrics["eval_loss"]

    stopper = EarlyStopper.from_config(t.early_stopping)
    stage = zero_stage
    vocab = int(engine.module.config.vocab_size)
    pos = _Position()
    if start is None:
        seed_everything(t.seed, t.deterministic)
        eval_before = run_eval(0)
        last_eval = eval_before
    else:
        pos = _Position(start.step, start.epoch, start.batches_in_epoch, start.train_tokens)
        eval_before, last_eval = start.eval_loss_before, start.eval_loss
        reporter.log({"resumed_from_step": float(start.step)}, start.step)
    history: list[dict[str, float]] = [{"step": float(pos.step), "eval_loss": last_eval}]
    if stopper is not None:
        stopper.update(eval_before)
    ledger = BatchLedger(t.batch_ledger, rank)
    per_step = world * t.grad_accum

    window_tokens = 0.0
    # Losses stay tensors until a log window reduces them: a ``float(loss)`` per micro-batch would be
    # a host sync per step (free on CPU, a pipeline stall on GPU).
    window_loss: list[torch.Tensor] = []
    window_time = 0.0  # training seconds of the current log window
    train_time = 0.0
    first_step_unix = math.nan
    tick = time.perf_counter()

    def state(resumable_eval: float) -> TrainerState:
        return TrainerState(
            pos.step, pos.epoch, pos.consumed, config_hash, world, t.grad_accum,
            resumable_eval, eval_before, pos.tokens,
        )  # fmt: skip

    def log_window() -> None:
        """Reduce the losses/tokens since the last log across ranks (a collective) and log them."""
        nonlocal train_time, tick, window_loss, window_tokens, window_time
        now = time.perf_counter()
        train_time += now - tick
        window_time += now - tick
        tick = now
        local_loss = float(torch.stack(window_loss).float().sum()) if window_loss else 0.0
        loss_sum, n_loss, tok = all_reduce_sum([local_loss, len(window_loss), window_tokens], device)
        pos.tokens += tok
        metrics = {
            "train_loss": loss_sum / max(n_loss, 1),
            "lr": float(engine.get_lr()[0]),
            "tokens_per_second": pos.tokens / max(train_time, 1e-9),
            # This window alone: a benchmark takes the median over windows after its warm-up.
            "window_tokens_per_second": tok / max(window_time, 1e-9),
            "epoch": float(pos.epoch),
        }
        window_loss, window_tokens, window_time = [], 0.0, 0.0
        reporter.log(metrics, pos.step)
        history.append({"step": float(pos.step), **metrics})

    def checkpoint(metrics: dict[str, float]) -> None:
        nonlocal tick
        if window_loss:
            log_window()  # the saved token count covers every step so far
        paused = time.perf_counter()
        _checkpoint_and_report(
            engine, tokenizer, rank, stage, state(last_eval), metrics, reporter, vocab, device, resumable=True
        )
        tick += time.perf_counter() - paused

    engine.train()
    while pos.step < total_steps and not (stopper and stopper.stopped):
        skip, local = pos.consumed, 0
        tick = time.perf_counter()
        for batch in train_batches(pos.epoch, skip):
            on_optimizer_step(engine.module, pos.step)  # gradual unfreezing (freeze method); else no-op
            on_device = _to_device(batch, device)
            out = objective.step(engine, on_device)
            loss = out.loss
            engine.backward(loss)
            # Ask before step(): DeepSpeed advances its micro-step counter at the end of step(), so
            # asking afterwards answers for the *next* micro-batch (off by one when grad_accum > 1).
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            ledger.record(pos.step + 1, pos.epoch, skip + local * world + rank, out.ids)
            local += 1
            window_tokens += out.tokens
            window_loss.append(loss.detach())
            if not boundary:
                continue
            pos.step += 1
            if math.isnan(first_step_unix):
                first_step_unix = time.time()
            pos.consumed = skip + local * world
            assert pos.consumed % per_step == 0, (pos.consumed, per_step)
            step = pos.step
            if step % max(t.log_every, 1) == 0 or step == total_steps:
                log_window()
            if t.eval_every and step % t.eval_every == 0 and step < total_steps:
                if window_loss:
                    # Flush first, so the report's train_tokens counts every step so far: a token
                    # budget (tune/budget.py) sums them, and a stale count let sweeps overrun it.
                    log_window()
                paused = time.perf_counter()
                last_eval = run_eval(step)
                history.append({"step": float(step), "eval_loss": last_eval})
                if not (t.checkpoint_every and step % t.checkpoint_every == 0):
                    # One report per evaluation: what a scheduler such as ASHA ranks trials by.
                    reporter.report(
                        {"step": float(step), "eval_loss": last_eval, "train_tokens": pos.tokens, **extras},
                        None,
                    )
                tick += time.perf_counter() - paused  # evaluation time is not training time
                if stopper is not None and stopper.update(last_eval):
                    if window_loss:  # same on every rank: all ranks step in lockstep
                        log_window()
                    break  # identical on every rank: last_eval is all-reduced
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < total_steps:
                report = {"step": float(step), "eval_loss": last_eval, "train_tokens": pos.tokens}
                checkpoint({**report, **extras})
            if stop_requested is not None and _any_rank(stop_requested(), device) and step < total_steps:
                checkpoint({"step": float(step), "eval_loss": last_eval, "train_tokens": pos.tokens})
                raise Preempted(f"stopped by a signal at step {step}: a resumable checkpoint was saved")
            if step >= total_steps:
                break
        elapsed = time.perf_counter() - tick
        train_time, window_time = train_time + elapsed, window_time + elapsed
        if local == 0 and skip == 0:
            raise RuntimeError("the training data yielded no batch: the dataset is smaller than one batch")
        if pos.step < total_steps and not (stopper and stopper.stopped):
            pos.epoch, pos.consumed = pos.epoch + 1, 0

    stopped = bool(stopper and stopper.stopped)
    # Stopped early: the weights are those just evaluated, so that value is the final one.
    eval_after = last_eval if stopped else run_eval(pos.step)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h] + [eval_after]
    best = min((v for v in evals if not math.isnan(v)), default=math.nan)
    tps = pos.tokens / max(train_time, 1e-9)
    final = {
        "step": float(pos.step),
        "eval_loss": eval_after,
        "eval_loss_before": eval_before,
        "train_tokens": pos.tokens,
        "tokens_per_second": tps,
        "stopped_early": float(stopped),
        "best_eval_loss": best,
        "first_step_unix": first_step_unix,
        **extras,
    }
    reporter.log({"stopped_early": float(stopped), "best_eval_loss": best}, pos.step)
    if not stopped:
        history.append({"step": float(pos.step), "eval_loss": eval_after})
    _checkpoint_and_report(engine, tokenizer, rank, stage, state(eval_after), final, reporter, vocab, device)
    return LoopResult(
        eval_before, eval_after, int(pos.tokens), tps, pos.step, history, stopped, best, first_step_unix
    )


class Preempted(RuntimeError):
    """Raised on every rank after the checkpoint a stop signal asked for was saved."""


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (one SIGTERMed worker stops the group)."""
    return all_reduce_sum([float(flag)], device)[0] > 0


def _checkpoint_and_report(
    engine: TrainingEngine,
    tokenizer: SavableTokenizer,
    rank: int,
    stage: int,
    state: TrainerState,
    metrics: dict[str, float],
    reporter: Reporter,
    vocab: int,
    device: torch.device,
    resumable: bool = False,
) -> None:
    """Save (collective), hand each rank's directory to the reporter, then drop the staging copy."""
    rng = capture()  # before the probe's forward pass, so the saved stream is the training one
    probe = probe_logits(engine.module, vocab, device)
    staging = Path(tempfile.mkdtemp(prefix="tuneforge-ckpt-")) if rank == 0 or resumable else None
    target = staging / f"step_{state.step:07d}" if staging else None
    saved = save_checkpoint(
        engine, tokenizer, target, rank=rank, zero_stage=stage, state=state, probe=probe,
        resumable=resumable, rng=rng,
    )  # fmt: skip
    try:
        reporter.report(metrics, saved, f"checkpoint_step_{state.step:07d}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
