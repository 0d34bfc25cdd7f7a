"""``train_loop_per_worker``: what every Ray Train worker runs.

The driver's ``WorkerArgs`` (the job plus what was prepared for it) arrive as a plain dict (they
crossed the wire) and are re-validated here; the rest is the Ray-free building blocks of
``tuneforge.training`` fed with this worker's dataset shards.
"""

from __future__ import annotations

import re
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch

from tuneforge.distributed.threads import set_worker_threads
from tuneforge.distributed.worker_args import WorkerArgs
from tuneforge.models.factory import load_model
from tuneforge.models.methods import apply_method, count_parameters
from tuneforge.models.precision import autocast_dtype, resolve_dtype
from tuneforge.models.tokenizer import load_tokenizer
from tuneforge.tracking import log_metrics
from tuneforge.training.checkpoint import load_resume_state
from tuneforge.training.checkpoint_store import StoredCheckpoint, incomplete_reason, latest_resumable, prune
from tuneforge.training.engine import configure_accelerator, seed_everything, setup_engine
from tuneforge.training.eval_shards import lockstep_shard
from tuneforge.training.loop import run_loop
from tuneforge.training.objectives import objective_for
from tuneforge.training.reference import setup_reference
from tuneforge.training.replay import ReplayableBatches
from tuneforge.training.trainer_state import TrainerState


class RayReporter:
    """Rank 0 logs metrics straight to MLflow; every rank reports to Ray Train (a barrier).

    Every report also carries the run's cost figures (``extra``: trainable parameters) and this
    process's peak resident memory, so a sweep can weigh quality against cost per trial. After a
    checkpoint is on storage, rank 0 applies the retention policy (keep last K + best K).
    """

    def __init__(
        self,
        rank: int,
        tracking_uri: str | None,
        run_id: str | None,
        extra: dict[str, float] | None = None,
        storage_dir: Path | None = None,
        keep: tuple[int, int] = (2, 1),
    ) -> None:
        self.rank, self.uri, self.run_id = rank, tracking_uri, run_id
        self.extra = dict(extra or {})
        self.storage_dir, self.keep = storage_dir, keep

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.rank == 0 and self.uri and self.run_id:
            log_metrics(self.uri, self.run_id, metrics, step)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, name: str | None = None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        payload = {**self.extra, "peak_rss_bytes": float(peak), **metrics}
        ray.train.report(payload, checkpoint=ckpt, checkpoint_dir_name=name if ckpt else None)
        if ckpt is not None and self.rank == 0 and self.storage_dir is not None:
            prune(self.storage_dir, *self.keep)  # every rank's upload finished: report is a barrier

    def relay(self, stored: StoredCheckpoint) -> None:
        """Report again a checkpoint that is complete on storage but that Ray Train never registered.

        ``ray.train.report`` returns once the result is queued on the worker; the controller
        collects it on its next poll. A worker killed in between leaves the checkpoint on storage
        (resume finds it) but its report is lost, and with it the evaluation a sweep's scheduler
        (ASHA) counts as one ``training_iteration``: the trial would end one rung short. The
        relayed report carries the metrics the lost one carried (all kept in the checkpoint's
        ``TrainerState``) and registers the checkpoint where it lies (``NO_UPLOAD``), so it is
        neither copied nor, after a second failure, relayed twice.
        """
        state = stored.state
        metrics = {
            "step": float(state.step),
            "eval_loss": state.eval_loss,
            "train_tokens": state.train_tokens,
        }
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ray.train.report(
            {**self.extra, "peak_rss_bytes": float(peak), **metrics},
            checkpoint=ray.train.Checkpoint.from_directory(str(stored.path)),
            checkpoint_dir_name=stored.path.name,
            checkpoint_upload_mode=ray.train.CheckpointUploadMode.NO_UPLOAD,
        )


def strided_batches(
    shard: Any,
    *,
    epoch: int,
    skip: int,
    usable: int,
    rank: int,
    world: int,
    micro_batch_size: int,
    seed: int,
    dtypes: torch.dtype | None = torch.long,
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's micro-batches of ``epoch``: every ``world``-th of one global sequence.

    Every rank reads the whole (unsplit) training stream in the cache's order, with the same seeded
    local shuffle, so all ranks see the same global sequence of micro-batches; rank ``r`` trains
    those at indices ``r, r + world, ...``. A data position is then one number (global micro-batches
    consumed), independent of which worker read what: a resumed run, on any worker count, starts at
    index ``skip``. ``usable`` trims the epoch to whole optimizer steps, so every rank steps in
    lockstep. (Ray's streaming_split hands blocks to whichever worker asks first, which cannot be
    replayed exactly.) The cost is that each rank reads the whole tokenized stream. ``dtypes=None``
    keeps each column's own type (preference rows carry float reference log-probs).
    """
    batches = shard.iter_torch_batches(
        batch_size=micro_batch_size,
        drop_last=True,
        dtypes=dtypes,
        local_shuffle_buffer_size=4 * micro_batch_size,
        local_shuffle_seed=(seed + epoch) % 2**32,  # NumPy seeds must be non-negative
    )
    for index, batch in enumerate(batches):
        if index >= usable:
            return
        if index >= skip and index % world == rank:
            yield batch


def registered_step(name: str | None) -> int:
    """The step of the checkpoint Ray Train last registered, from its name (-1: none).

    Read from the name (``checkpoint_step_0000012``), not the files: retention may have
    deleted the directory since.
    """
    match = re.fullmatch(r"checkpoint_step_(\d+)", name or "")
    return int(match.group(1)) if match else -1


def restart_point(args: WorkerArgs) -> tuple[StoredCheckpoint | None, bool]:
    """The checkpoint this attempt continues from (None: a fresh start), and whether to relay it.

    The newest complete resumable checkpoint among: what Ray Train hands back after a restart
    (``get_checkpoint``), what is on storage (a checkpoint uploaded just before a crash is complete
    there but may never have been registered), and the ``--resume`` checkpoint of the first attempt.
    One on this attempt's storage that is newer than the registered one was never reported:
    ``RayReporter.relay`` reports it.
    """
    found: list[StoredCheckpoint] = []
    latest = latest_resumable(args.storage_dir)
    if latest is not None:
        found.append(latest)
    registered = ray.train.get_checkpoint()
    for candidate in (registered.path if registered else None, args.resume_from):
        if candidate and incomplete_reason(Path(candidate)) is None:
            state = TrainerState.load(candidate)
            if state.resumable:
                found.append(StoredCheckpoint(Path(candidate), state))
    if not found:
        return None, False
    best = max(found, key=lambda c: c.state.step)
    known = registered_step(Path(registered.path).name if registered else None)
    return best, best is latest and best.state.step > known


_STOP = threading.Event()


def _install_sigterm_handler() -> None:
    """SIGTERM (a preemption notice) asks for a checkpoint instead of killing the worker at once.

    Runs on the actor's main thread (only it may install handlers). A second SIGTERM falls through
    to Ray's own handler, so a worker that cannot reach a step boundary still exits.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        if _STOP.is_set() and callable(previous):
            previous(signum, frame)
        _STOP.set()

    signal.signal(signal.SIGTERM, handler)


def stop_on_sigterm() -> Callable[[], bool]:
    """Install the SIGTERM handler in this worker process; returns the "stop requested?" check.

    Ray Train runs the training function in a thread, so the handler is installed through the
    worker actor's own ``execute`` method, which runs on the process's main thread.
    """
    if threading.current_thread() is threading.main_thread():
        _install_sigterm_handler()
    else:
        ray.get(ray.get_runtime_context().current_actor.execute.remote(_install_sigterm_handler))
    return _STOP.is_set


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """Build model + engine on this worker and run the step loop over its shards.

    ``cfg`` is ``WorkerArgs.to_config()`` from the driver (distributed/trainer_factory.py).
    """
    phases = {"phase_worker_start_unix": time.time()}  # in every report: the bench's time to first step
    args = WorkerArgs.from_config(cfg)
    job = args.job
    configure_accelerator(job.distributed.use_gpu, str(args.extensions_dir))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    set_worker_threads(job.distributed.threads_per_worker, ctx.get_local_world_size())
    device = ray.train.torch.get_device()
    seed_everything(job.trainer.seed, job.trainer.deterministic)  # before any weights are created
    dtype = resolve_dtype(job.model.dtype, job.distributed.use_gpu)
    autocast = autocast_dtype(job.model.dtype, job.distributed.use_gpu)

    tokenizer = load_tokenizer(args.tokenizer_dir, job.model.trust_remote_code)
    phases["phase_tokenizer_unix"] = time.time()
    model = apply_method(
        load_model(args.base_dir, job.model, job.distributed.use_gpu),
        job.method,
        tokenizer_dir=args.tokenizer_dir,
    )
    trainable, total = count_parameters(model)
    phases["phase_model_unix"] = time.time()
    engine = setup_engine(model, job.trainer, job.distributed, world, args.total_steps, dtype, autocast)
    if job.trainer.compile:
        engine.compile()  # lazily: the first forward pays the compile
    reference = None
    if job.method.resolved_reference() == "model":  # a frozen copy of the base, beside the policy
        base = load_model(args.base_dir, job.model, job.distributed.use_gpu)
        reference = setup_reference(base, job.trainer, job.distributed, world, dtype, autocast)
    phases["phase_engine_unix"] = time.time()
    reporter = RayReporter(
        rank,
        args.tracking_uri,
        args.run_id,
        extra={"trainable_params": float(trainable), **phases},
        storage_dir=args.storage_dir,
        keep=(job.trainer.keep_last, job.trainer.keep_best),
    )
    reporter.log({"trainable_params": float(trainable), "total_params": float(total)}, 0)

    start: TrainerState | None = None
    resume, unreported = restart_point(args)
    if resume is not None:
        start = resume.state
        load_resume_state(engine, resume.path, rank)
        if rank == 0:
            print(f"[tuneforge] resuming from {resume.path.name} (step {start.step})", flush=True)
        if unreported:  # every rank: a report is a collective
            if rank == 0:
                print(
                    f"[tuneforge] {resume.path.name} was saved but never reported: reporting it", flush=True
                )
            reporter.relay(resume)

    mbs = job.trainer.micro_batch_size
    train_shard = ray.train.get_dataset_shard("train")
    eval_shard = ray.train.get_dataset_shard("eval")
    per_step = world * job.trainer.grad_accum
    usable = (args.train_blocks // mbs) // per_step * per_step
    # SFT rows are all token ids; preference rows also carry float reference log-probs.
    dtypes = None if job.method.is_preference else torch.long

    def train_batches(epoch: int, skip: int) -> Iterator[dict[str, torch.Tensor]]:
        return strided_batches(
            train_shard, epoch=epoch, skip=skip, usable=usable, rank=rank, world=world,
            micro_batch_size=mbs, seed=job.trainer.seed, dtypes=dtypes,
        )  # fmt: skip

    # Each rank keeps a strided, lockstep-padded share of the whole held-out set, replayed from memory.
    eval_batches = ReplayableBatches(
        lambda: lockstep_shard(
            eval_shard.iter_torch_batches(batch_size=mbs, drop_last=False, dtypes=dtypes), rank, world
        )
    )

    run_loop(
        engine,
        tokenizer,
        job.trainer,
        zero_stage=job.distributed.zero_stage,
        objective=objective_for(job.method, reference),
        rank=rank,
        world=world,
        total_steps=args.total_steps,
        train_batches=train_batches,
        eval_batches=eval_batches,
        reporter=reporter,
        device=device,
        config_hash=args.config_hash,
        start=start,
        stop_requested=stop_on_sigterm(),
    )
