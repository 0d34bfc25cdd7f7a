"""``train_loop_per_worker``: what every Ray Train worker runs.

The job config arrives as a plain dict (it crossed the wire) and is re-validated here; the rest is
the Ray-free building blocks of ``tuneforge.training`` fed with this worker's dataset shards.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch

from tuneforge.config import config_from_dict
from tuneforge.models.factory import load_model, resolve_dtype
from tuneforge.models.methods import apply_method, count_parameters
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.tracking import log_metrics
from tuneforge.training.engine import configure_accelerator, seed_everything, setup_engine
from tuneforge.training.loop import run_loop
from tuneforge.training.replay import ReplayableBatches


class RayReporter:
    """Rank 0 logs metrics straight to MLflow; every rank reports to Ray Train (a barrier).

    Every report also carries the run's cost figures (``extra``: trainable parameters) and this
    process's peak resident memory, so a sweep can weigh quality against cost per trial.
    """

    def __init__(
        self, rank: int, tracking_uri: str | None, run_id: str | None, extra: dict[str, float] | None = None
    ) -> None:
        self.rank, self.uri, self.run_id = rank, tracking_uri, run_id
        self.extra = dict(extra or {})

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.rank == 0 and self.uri and self.run_id:
            log_metrics(self.uri, self.run_id, metrics, step)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        ray.train.report({**self.extra, "peak_rss_bytes": float(peak), **metrics}, checkpoint=ckpt)


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """Build model + engine on this worker and run the step loop over its shards."""
    job = config_from_dict(cfg["job"])
    configure_accelerator(job.distributed.use_gpu, cfg.get("extensions_dir"))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    seed_everything(job.trainer.seed, job.trainer.deterministic)  # before any weights are created
    dtype = resolve_dtype(job.model.dtype, job.distributed.use_gpu)

    tokenizer = load_tokenizer(cfg["tokenizer_dir"], job.model.trust_remote_code)
    model = apply_method(
        load_model(cfg["base_dir"], job.model, job.distributed.use_gpu),
        job.method,
        tokenizer_dir=cfg["tokenizer_dir"],
    )
    trainable, total = count_parameters(model)
    engine = setup_engine(model, job, world, cfg["total_steps"], dtype)
    reporter = RayReporter(
        rank, cfg.get("tracking_uri"), cfg.get("run_id"), extra={"trainable_params": float(trainable)}
    )
    reporter.log({"trainable_params": float(trainable), "total_params": float(total)}, 0)

    mbs = job.trainer.micro_batch_size
    train_shard = ray.train.get_dataset_shard("train")
    eval_shard = ray.train.get_dataset_shard("eval")

    def train_batches(epoch: int):
        # The global order is the cache entry's (a seeded shuffle of the whole mix, written in order;
        # DataConfig(preserve_order=True) streams it as written). A small seeded local shuffle varies
        # each epoch reproducibly; NumPy seeds must be non-negative, so the seed is taken mod 2**32.
        return train_shard.iter_torch_batches(
            batch_size=mbs,
            drop_last=True,
            dtypes=torch.long,
            local_shuffle_buffer_size=4 * mbs,
            local_shuffle_seed=(job.trainer.seed + epoch) % 2**32,
        )

    # The held-out shard is read once; later evaluations replay it from memory (training/replay.py).
    eval_batches = ReplayableBatches(
        lambda: eval_shard.iter_torch_batches(batch_size=mbs, drop_last=False, dtypes=torch.long)
    )

    run_loop(
        engine,
        tokenizer,
        job,
        rank=rank,
        total_steps=cfg["total_steps"],
        train_batches=train_batches,
        eval_batches=eval_batches,
        reporter=reporter,
        device=device,
        config_hash=cfg["config_hash"],
    )
