"""Scenarios for the Ray-free distributed tests: the real ``setup_engine`` + ``run_loop`` on spawned ranks.

Spawned children re-import this module by name (``spawn`` pickles functions by reference), so it holds
only module-level functions and plain data. Every case is a dict the parent builds; the children run
the cases one after another in the same processes, so process start-up, imports and DeepSpeed's
shared-memory op load are paid once per spawn.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import JobConfig, config_from_dict
from tuneforge.models.factory import build_tiny_model, load_model
from tuneforge.models.io import save_hf
from tuneforge.testing import (
    TINY_MODEL,
    NullTokenizer,
    RecordingReporter,
    shard_batches,
    spawn,
    synthetic_batches,
)
from tuneforge.training.engine import seed_everything, setup_engine
from tuneforge.training.loop import run_loop
from tuneforge.training.objectives import objective_for

VOCAB = 64
SEQ = 32
# The shared tiny shape on a 64-token vocabulary of random ids (no tokenizer) and a short context.
TINY = {**TINY_MODEL.model_dump(), "vocab_size": VOCAB, "max_position_embeddings": 64}


def make_job(
    trainer: dict[str, Any], zero_stage: int, world: int, model: dict[str, Any] | None = None
) -> JobConfig:
    """A job spec around synthetic data (the data section is required but unused here)."""
    return config_from_dict(
        {
            "data": {"train_files": ["synthetic.jsonl"]},
            "model": {"tiny": TINY, **(model or {})},
            "trainer": {"max_seq_len": SEQ, "log_every": 1, "lr": 3e-3, "grad_clip": 1.0, **trainer},
            "distributed": {"num_workers": world, "zero_stage": zero_stage},
            "registry": {"model_name": None},
        }
    )


def base_model_dir(root: Path, seed: int) -> Path:
    """Where the seed's random-init base lives (an HF dir, so ranks load it through ``load_model``)."""
    return root / f"base-seed{seed}"


def prepare_bases(root: Path, cases: dict[str, dict[str, Any]]) -> None:
    """Save every case's base model once, in the parent, as the driver does before training.

    Not on the ranks: with a process group up, transformers writes ``config.json`` on rank 0 only.
    """
    for case in cases.values():
        job = make_job(case["trainer"], case["zero_stage"], 1, case.get("model"))
        target = base_model_dir(root, job.trainer.seed)
        if not target.exists():
            save_hf(build_tiny_model(job.model.tiny, VOCAB, seed=job.trainer.seed), None, target)


def data(case: dict[str, Any], key: str) -> list[dict[str, torch.Tensor]]:
    spec = case[key]
    return synthetic_batches(spec["n"], spec["rows"], case.get("seq", SEQ), VOCAB, spec["seed"], spec["dir"])


def run_case(rank: int, world: int, case: dict[str, Any], root: Path) -> dict[str, Any]:
    """One training run, as ``distributed.worker`` does it but with in-memory batches and reporter."""
    job = make_job(case["trainer"], case["zero_stage"], world, case.get("model"))
    t = job.trainer
    seed_everything(t.seed)
    model = load_model(base_model_dir(root, t.seed), job.model)
    engine = setup_engine(model, t, job.distributed, world, case["steps"], torch.float32)
    train, evals = data(case, "train"), data(case, "eval")
    keep = Path(case["keep_dir"]) if case.get("keep_dir") and rank == 0 else None
    reporter = RecordingReporter(keep_dir=keep)
    result = run_loop(
        engine,
        NullTokenizer(),
        t,
        zero_stage=job.distributed.zero_stage,
        objective=objective_for(job.method),
        rank=rank,
        world=world,
        total_steps=case["steps"],
        train_batches=lambda epoch, skip: shard_batches(train, rank, world, t.micro_batch_size),
        eval_batches=lambda: shard_batches(evals, rank, world, t.micro_batch_size),
        reporter=reporter,
        device=torch.device("cpu"),
        config_hash="test",
    )
    params = None
    if case["zero_stage"] < 3:
        params = torch.cat([p.detach().flatten().clone() for p in engine.module.parameters()])
    engine.destroy()
    return {
        "train_loss": [h["train_loss"] for h in result.history if "train_loss" in h],
        "eval_loss": [h["eval_loss"] for h in result.history if "eval_loss" in h],
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "best_eval_loss": result.best_eval_loss,
        "eval_loss_after": result.eval_loss_after,
        "final_report": reporter.reports[-1] if reporter.reports else None,
        "windows": [h for h in result.history if "train_loss" in h],
        "first_step_unix": result.first_step_unix,
        "reports": reporter.reports,
        "checkpoints": reporter.checkpoints,
        "params": params,
    }


def run_cases(
    rank: int, world: int, cases: dict[str, dict[str, Any]], root: str
) -> dict[str, dict[str, Any]]:
    """Every case in order on this rank (the ``spawn`` target); bases under ``root`` (``prepare_bases``)."""
    return {name: run_case(rank, world, case, Path(root)) for name, case in cases.items()}


def run_all(cases: dict[str, dict[str, Any]], world: int = 2) -> list[dict[str, dict[str, Any]]]:
    """Prepare the bases, then run every case on ``world`` spawned ranks; one result dict per rank."""
    with tempfile.TemporaryDirectory(prefix="tuneforge-dist-") as root:
        prepare_bases(Path(root), cases)
        return spawn(run_cases, world, cases, root)
