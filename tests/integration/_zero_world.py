"""Ranks of test_zero_world_change: save a resumable ZeRO checkpoint on one world size, resume on another.

Spawned children re-import this module by name, so it holds only module-level functions and plain
data. Every rank runs the production ``setup_engine``, ``save_checkpoint(resumable=True)`` and
``load_resume_state``; the rank folders are merged into one directory the way Ray Train merges them
on storage. Batches are global: rank ``r`` of ``world`` trains rows ``r*n..(r+1)*n`` of each, and
``grad_accum`` is ``ROWS / world`` (the rescale a resume applies), so every world trains the same
global batch per optimizer step.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import _dist
import torch
import torch.distributed as dist

from tuneforge.data import to_model_inputs
from tuneforge.models.factory import load_model
from tuneforge.testing import NullTokenizer, shard_batches, synthetic_batches
from tuneforge.training.checkpoint import load_resume_state, save_checkpoint
from tuneforge.training.engine import seed_everything, setup_engine
from tuneforge.training.rng import capture
from tuneforge.training.trainer_state import TrainerState

ROWS = 2  # rows per global batch = micro-batches per optimizer step (micro_batch_size 1)
TOTAL_STEPS = 6
STATE_KEYS = ("fp32", "exp_avg", "exp_avg_sq")


def make_engine(root: Path, stage: int, world: int) -> Any:
    """The production engine (two AdamW groups: decayed and not) on the seed's tiny base."""
    trainer = {"micro_batch_size": 1, "grad_accum": ROWS // world, "warmup_steps": 2, "weight_decay": 0.01}
    job = _dist.make_job({**trainer, "seed": 7}, stage, world)
    seed_everything(job.trainer.seed)
    model = load_model(_dist.base_model_dir(root, job.trainer.seed), job.model)
    return setup_engine(model, job.trainer, job.distributed, world, TOTAL_STEPS, torch.float32)


def train(engine: Any, rank: int, world: int, first: int, steps: int) -> list[float]:
    """Optimizer steps ``first..first+steps-1``; each step's loss averaged over the global batch."""
    batches = synthetic_batches(TOTAL_STEPS, ROWS, _dist.SEQ, _dist.VOCAB, seed=3)
    losses = []
    for step in range(first, first + steps):
        local = []
        for micro in shard_batches([batches[step]], rank, world, 1):
            loss = engine(**to_model_inputs(micro)).loss
            engine.backward(loss)
            engine.step()
            local.append(float(loss.detach()))
        total = torch.tensor([sum(local), len(local)], dtype=torch.float64)
        dist.all_reduce(total)
        losses.append(float(total[0] / total[1]))
    return losses


def full_states(engine: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Every trainable parameter's whole fp32 master and Adam moments (collectives: every rank calls).

    ZeRO-1/2 link a parameter to its optimizer state once, after the first optimizer step of its
    *first* param group, when the second group has no state yet; relinking makes the second
    group's moments readable through DeepSpeed's fragment API.
    """
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    optimizer = engine.optimizer
    if hasattr(optimizer, "_hp_optimizer_states_linked"):
        optimizer._hp_optimizer_states_linked = False
        optimizer._lazy_init_hp_params_optimizer_state()
    out = {}
    for name, p in engine.module.named_parameters():
        if p.requires_grad and safe_get_full_fp32_param(p) is None:
            # ZeRO-0: the parameter is its own fp32 master; the client AdamW holds the moments.
            state = getattr(optimizer, "optimizer", optimizer).state[p]
            out[name] = {
                "fp32": p.detach().float().clone(),
                "exp_avg": state["exp_avg"].clone(),
                "exp_avg_sq": state["exp_avg_sq"].clone(),
            }
        elif p.requires_grad:
            out[name] = {
                "fp32": safe_get_full_fp32_param(p).clone(),
                "exp_avg": safe_get_full_optimizer_state(p, "exp_avg").clone(),
                "exp_avg_sq": safe_get_full_optimizer_state(p, "exp_avg_sq").clone(),
            }
    return out


def progress(engine: Any) -> dict[str, Any]:
    """What else a resume must carry over: Adam's step, the LR schedule, each group's settings."""
    base = getattr(engine.optimizer, "optimizer", engine.optimizer)
    steps = sorted({float(s["step"]) for s in base.state.values() if "step" in s})
    groups = [(g["lr"], g["weight_decay"]) for g in engine.optimizer.param_groups]
    return {"adam_step": steps, "sched_epoch": engine.lr_scheduler.last_epoch, "groups": groups}


def save(engine: Any, rank: int, world: int, step: int, target: Path) -> None:
    """A resumable checkpoint of ``step`` into ``target``: every rank's folder merged, as on storage."""
    state = TrainerState(step, 0, step * ROWS, "test", world, ROWS // world)
    local = Path(tempfile.mkdtemp(prefix=f"zw-rank{rank}-"))
    try:
        mine = save_checkpoint(
            engine, NullTokenizer(), local / "ckpt", rank=rank, zero_stage=engine.zero_optimization_stage(),
            state=state, probe=None, resumable=True, rng=capture(),
        )  # fmt: skip
        assert mine is not None
        dist.barrier()
        shutil.copytree(mine, target, dirs_exist_ok=True)
        dist.barrier()
    finally:
        shutil.rmtree(local, ignore_errors=True)


def run_stage(rank: int, world: int, stage: int, root: Path, leg: dict[str, Any]) -> dict[str, Any]:
    """One leg for one ZeRO stage: optionally resume, train, optionally save, then train on."""
    engine = make_engine(root, stage, world)
    out: dict[str, Any] = {}
    first = 0
    if leg.get("load"):
        ckpt = root / f"z{stage}" / leg["load"]
        out["own_rng"] = load_resume_state(engine, ckpt, rank)
        first = TrainerState.load(ckpt).step
        out["loaded"] = full_states(engine)
        out["loaded_progress"] = progress(engine)
    out["losses"] = train(engine, rank, world, first, leg["steps"])
    if leg.get("save"):
        save(engine, rank, world, first + leg["steps"], root / f"z{stage}" / leg["save"])
        out["saved"] = full_states(engine)
        out["saved_progress"] = progress(engine)
        out["after_save"] = train(engine, rank, world, first + leg["steps"], leg["then"])
    engine.destroy()
    return out if rank == 0 else {}


def run_leg(rank: int, world: int, stages: list[int], root: str, leg: dict[str, Any]) -> dict[int, Any]:
    """The ``spawn`` target: the same leg for every stage, in one set of processes."""
    return {stage: run_stage(rank, world, stage, Path(root), leg) for stage in stages}
