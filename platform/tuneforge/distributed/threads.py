"""How many compute threads a Ray Train worker runs: the node's cores, shared by the job's workers on it.

Ray sets ``OMP_NUM_THREADS`` in every actor to its CPU *reservation* (1 for ``cpus_per_worker: 1``,
and 1 again for a fractional 0.5), and torch sizes its intra-op pool from it. CPUs in Ray are
scheduling tokens: a local run also reserves one for Ray Data, which is idle once the corpus is
tokenized and cached. So on a 2-core machine a 1-worker job trained on one thread while a plain
PyTorch loop used both: most of the 0.68x the first benchmark measured (docs/performance.md). The
worker therefore sizes its pool from what it physically shares the node with: its cores divided by
the number of this job's workers on the node (Ray Train's local world size), unless the job sets
``distributed.threads_per_worker``.
"""

from __future__ import annotations

import os

import torch

from tuneforge.config import JobConfig


def node_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(configured: int | None, cores: int, local_workers: int) -> int:
    """Threads for one worker: the configured count, else an even share of the node's cores (>= 1)."""
    if configured is not None:
        return configured
    return max(1, cores // max(1, local_workers))


def with_trial_threads(job: JobConfig, concurrent_trials: int, cores: int | None = None) -> JobConfig:
    """``job`` with ``threads_per_worker`` set for a sweep on one machine, where trials run side by side.

    A worker alone sizes its pool from its own job's workers on the node; it cannot see the other
    trials' workers, and two trials each taking every core would oversubscribe them (OpenMP pools
    spin). A value the user set is kept.
    """
    d = job.distributed
    if d.threads_per_worker is not None:
        return job
    share = worker_threads(None, cores or node_cores(), concurrent_trials * d.num_workers)
    return job.model_copy(update={"distributed": d.model_copy(update={"threads_per_worker": share})})


def set_worker_threads(configured: int | None, local_workers: int) -> int:
    """Size torch's intra-op pool (and OpenMP's, for libraries reading it later); returns the count."""
    n = worker_threads(configured, node_cores(), local_workers)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    return n


__all__ = ["node_cores", "set_worker_threads", "with_trial_threads", "worker_threads"]
