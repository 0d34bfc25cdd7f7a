"""Driver-side checks that turn a run which could never work into one clear line, early.

``check_before_work`` runs first (no Ray, nothing written): the output directory, the base model
and its tokenizer, and the tracking store. ``check_cluster_fits`` runs right after Ray is up: a
worker group that cannot be placed would otherwise wait for resources forever.

A local Ray instance is sized honestly: the machine's CPUs, oversubscribed at most
``LOCAL_OVERSUBSCRIBE`` times (Ray CPUs are scheduling tokens; a little oversubscription only
slows a small demo down, a lot of it is a config mistake), plus the one CPU kept for Ray Data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from tuneforge.config import ConfigError, JobConfig

#: How many times the machine's cores a local instance may promise (``TUNEFORGE_CPU_OVERSUBSCRIBE``).
LOCAL_OVERSUBSCRIBE = 2.0
#: CPUs kept free for Ray Data's tokenizing/reading tasks next to the training workers.
DATA_CPUS = 1
#: Bounded wait for the worker group's placement group (Ray Train's default 60 s, then retried forever).
WORKER_GROUP_START_TIMEOUT_S = 60
#: Worker-group start attempts retried after a timeout (Ray's default: forever) -> at most 2 minutes.
START_RETRIES = 1


#: Set by ``cluster.start_private_instance`` to the address of the instance this process started.
LOCAL_ADDRESS_ENV = "TUNEFORGE_LOCAL_RAY"


def on_local_instance() -> bool:
    """Whether this process runs on a local instance it started (not one it joined)."""
    address = os.environ.get("RAY_ADDRESS")
    return not address or address == os.environ.get(LOCAL_ADDRESS_ENV)


def check_before_work(job: JobConfig, run_dir: Path, *, overwrite: bool = False) -> None:
    """Output directory, base model + tokenizer, tracking store: each refused with one line."""
    from tuneforge.config.preflight import check_output_dir
    from tuneforge.models.preflight import check_base_model
    from tuneforge.tracking import resolve_tracking_uri
    from tuneforge.tracking.preflight import check_tracking_uri

    check_output_dir(job, run_dir, overwrite)
    check_base_model(job.model, job.trainer.max_seq_len)
    field = "tracking.uri" if job.tracking.uri else "MLFLOW_TRACKING_URI"
    check_tracking_uri(resolve_tracking_uri(job.tracking.uri), field=field)


def cpus_needed(job: JobConfig) -> int:
    """CPUs a run needs: every worker's share, rounded up, plus the Ray Data reserve."""
    d = job.distributed
    return math.ceil(d.num_workers * d.cpus_per_worker) + DATA_CPUS


def oversubscribe() -> float:
    try:
        return max(1.0, float(os.environ.get("TUNEFORGE_CPU_OVERSUBSCRIBE", LOCAL_OVERSUBSCRIBE)))
    except ValueError:
        return LOCAL_OVERSUBSCRIBE


def local_num_cpus(job: JobConfig, cores: int | None = None) -> int:
    """CPUs a local instance declares: the need, within [cores, cores x oversubscription]."""
    cores = cores or os.cpu_count() or 1
    return max(cores, min(cpus_needed(job), int(cores * oversubscribe())))


def fit_problem(
    job: JobConfig, total: dict[str, float], nodes: list[dict[str, float]], local: bool
) -> str | None:
    """Why the job's worker group cannot be placed on a cluster with these resources, or None.

    ``total`` is ``ray.cluster_resources()``; ``nodes`` each alive node's resources (a worker's CPUs
    and GPU must come from one node).
    """
    d = job.distributed
    asked = f"distributed.num_workers={d.num_workers} x distributed.cpus_per_worker={d.cpus_per_worker:g}"
    need = d.num_workers * d.cpus_per_worker + DATA_CPUS
    have = float(total.get("CPU", 0))
    where = (
        f"this machine's local Ray instance has {have:g} (its {os.cpu_count()} cores, oversubscribed "
        f"at most {oversubscribe():g}x)"
        if local
        else f"the cluster has {have:g}"
    )
    fix = "lower distributed.num_workers or distributed.cpus_per_worker"
    if need > have + 1e-9:
        return f"{asked} + {DATA_CPUS} for Ray Data = {need:g} CPUs, but {where}; {fix}"
    biggest = max((n.get("CPU", 0.0) for n in nodes), default=have)
    if d.cpus_per_worker > biggest + 1e-9:
        return (
            f"distributed.cpus_per_worker={d.cpus_per_worker:g} but the largest node has {biggest:g} CPUs; "
            "a worker cannot span nodes"
        )
    if d.use_gpu:
        gpus = float(total.get("GPU", 0))
        if d.num_workers > gpus + 1e-9:
            return (
                f"distributed.use_gpu with distributed.num_workers={d.num_workers} needs "
                f"{d.num_workers} GPUs, but the {'machine' if local else 'cluster'} has {gpus:g}; "
                "lower distributed.num_workers "
                "or set distributed.use_gpu=false"
            )
    return None


def check_cluster_fits(job: JobConfig) -> None:
    """After ``ensure_ray``: refuse a worker group the connected cluster can never place.

    Also bounds the wait for one that should fit but cannot start (resources taken by someone else,
    a node lost): Ray Train's worker-group start timeout is set here if the user has not set it.
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(WORKER_GROUP_START_TIMEOUT_S))
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    problem = fit_problem(job, ray.cluster_resources(), nodes, on_local_instance())
    if problem:
        raise ConfigError(problem, field="distributed")


def worker_memory(job: JobConfig, gpu_memory: int | None = None) -> int:
    """Bytes one worker may use: the GPU's memory, or this machine's available RAM shared by the workers.

    GPU: ``gpu_memory`` if given, else the first visible device's total memory. CPU: ``MemAvailable``
    (every local worker is a process on this machine, so they share it; on a cluster joined through
    ``RAY_ADDRESS`` this machine's RAM is only an assumption, used to resolve ``auto`` values).
    """
    if job.distributed.use_gpu:
        if gpu_memory:
            return gpu_memory
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "distributed.use_gpu: no GPU is visible here to size the plan; pass the device memory "
                "(tuneforge plan --gpu-memory GB)",
                field="distributed.use_gpu",
            )
        return int(torch.cuda.get_device_properties(0).total_memory)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    return available // (job.distributed.num_workers if on_local_instance() else 1)


def _memory_known_here(job: JobConfig) -> bool:
    """Whether this machine can tell a worker's memory: its own local workers, or a visible GPU."""
    if job.distributed.use_gpu:
        import torch

        return torch.cuda.is_available()
    return on_local_instance()


def converted_base(job: JobConfig) -> Path | None:
    """A GGUF base's converted directory when an earlier run made it (its config.json reads at once)."""
    from tuneforge.models.gguf import converted_dir, is_converted, is_gguf, local_model_path
    from tuneforge.paths import tuneforge_home

    if job.model.name_or_path is None:
        return None
    path = local_model_path(job.model.name_or_path)
    if not is_gguf(path) or not path.is_file():
        return None
    folder, _ = converted_dir(path, tuneforge_home() / "cache" / "models")  # stages.prepare's cache
    return folder if is_converted(folder) else None


def check_memory_fits(job: JobConfig, base_dir: Path | None, say: Callable[[str], None]) -> JobConfig:
    """Before Ray starts: resolve ``auto`` stage/micro-batch, or refuse a job that cannot fit its workers.

    The prediction is ``models.memory``'s (validated to +-20% on CPU); a configuration over the
    planner's headroom fails here with needed vs available per worker and a choice that would fit.
    Where the workers' memory cannot be read here (a joined CPU cluster, GPUs the driver cannot see)
    only ``auto`` values are planned (a GPU then needs to be visible).
    """
    from tuneforge.models.memory_plan import describe, plan, problem, requested, resolved
    from tuneforge.models.model_shape import job_shape

    auto = job.distributed.zero_stage_auto or job.trainer.micro_batch_size_auto
    if not auto and not _memory_known_here(job):
        return job  # the workers' memory is not this machine's to read: only an explicit plan runs
    shape, trainable = job_shape(job, base_dir or converted_base(job))
    p = plan(job, shape, trainable, job.distributed.num_workers, worker_memory(job))
    why = problem(job, p)
    if why:
        raise ConfigError(
            why, field="distributed.zero_stage" if job.distributed.zero_stage_auto else "trainer"
        )
    if job.distributed.zero_stage_auto or job.trainer.micro_batch_size_auto:
        chosen = requested(job, p)
        assert chosen is not None  # problem() is None only when a choice fits
        say(f"memory planner chose {describe(chosen)} ({chosen.total / 2**30:.2f} GiB per worker)")
        return resolved(job, p)
    return job


__all__ = [
    "DATA_CPUS",
    "LOCAL_ADDRESS_ENV",
    "LOCAL_OVERSUBSCRIBE",
    "START_RETRIES",
    "WORKER_GROUP_START_TIMEOUT_S",
    "check_before_work",
    "check_cluster_fits",
    "check_memory_fits",
    "converted_base",
    "cpus_needed",
    "fit_problem",
    "local_num_cpus",
    "on_local_instance",
    "worker_memory",
]
