"""Build the Ray Train ``TorchTrainer`` for a job: one place, shared by a single run and a sweep trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.data import ExecutionOptions
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from tuneforge.config import JobConfig, config_hash
from tuneforge.distributed.data_pipeline import PreparedData
from tuneforge.distributed.preflight import START_RETRIES
from tuneforge.distributed.worker import train_loop_per_worker
from tuneforge.distributed.worker_args import WorkerArgs
from tuneforge.paths import tuneforge_home


def make_trainer(
    job: JobConfig,
    *,
    base_dir: Path,
    tok_dir: Path,
    data: PreparedData,
    total_steps: int,
    tracking_uri: str | None,
    run_id: str | None,
    name: str,
    storage_path: Path,
    callbacks: list[Any] | None = None,
    resume_from: Path | None = None,
) -> TorchTrainer:
    """A TorchTrainer whose workers run ``train_loop_per_worker`` on the job's materialised datasets.

    The job and its prepared inputs travel as ``WorkerArgs`` (a plain dict on the wire, re-validated on
    each worker); gloo on CPU, nccl on GPU.
    Checkpoints land in ``storage_path/name/checkpoint_step_<step>``; a worker group restarted
    after a failure (``max_failures``), or a rerun under the same name, resumes from the newest
    complete one there (or from ``resume_from``). Only the eval set is split by Ray: every worker
    reads the whole train stream and keeps its strided share (distributed/worker.py), so a data
    position means the same on any worker count.
    """
    d = job.distributed
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=WorkerArgs(
            job=job,
            base_dir=base_dir,
            tokenizer_dir=tok_dir,
            total_steps=total_steps,
            train_blocks=int(data.stats["train_blocks"]),
            storage_dir=storage_path / name,
            resume_from=resume_from,
            tracking_uri=tracking_uri,
            run_id=run_id,
            config_hash=config_hash(job),
            extensions_dir=tuneforge_home() / "torch_extensions",
        ).to_config(),
        torch_config=TorchConfig(backend="nccl" if d.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=d.num_workers,
            use_gpu=d.use_gpu,
            resources_per_worker={"CPU": d.cpus_per_worker},
            placement_strategy=d.placement_strategy,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path),
            # ray.train exports the Train V2 FailureConfig (the default) over the V1 one that mypy sees
            failure_config=FailureConfig(  # type: ignore[call-arg]
                max_failures=d.max_failures, controller_failure_limit=START_RETRIES
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            callbacks=callbacks,
        ),
        datasets={"train": data.train, "eval": data.eval},
        # Blocks are read from the cache's Parquet files in file order, so a rerun feeds the same rows.
        dataset_config=DataConfig(
            # nothing split: train is strided per rank (worker.strided_batches), eval too (lockstep_shard)
            datasets_to_split=[],
            execution_options=ExecutionOptions(preserve_order=True),
        ),
    )
