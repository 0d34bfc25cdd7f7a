"""Connecting to Ray: join the cluster a job was submitted to, or start a local instance.

Inside ``ray job submit`` (``RAY_ADDRESS`` is set) we call plain ``ray.init()``: passing resources
when connecting is an error. Locally we size the instance so that training workers *and* Ray Data
tasks fit (the small-machine deadlock in which Data gets no CPU is avoided by construction).
"""

from __future__ import annotations

import logging
import math
import os

import ray
import ray.data

from tuneforge.config import JobConfig


def quiet_libraries(verbose: bool) -> None:
    """Keep the console to our own progress lines unless the user asked for the libraries' logs."""
    if verbose:
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("ray.data", "ray.train", "ray.tune", "mlflow", "mlflow.transformers", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    ray.data.DataContext.get_current().enable_progress_bars = False


def ensure_ray(job: JobConfig, verbose: bool = False) -> None:
    """Initialise Ray once per process, quietly unless ``verbose``."""
    if ray.is_initialized():
        return
    quiet_libraries(verbose)
    # Ray Train polls workers at this interval; each report() waits up to one poll.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {"log_to_driver": verbose, "logging_level": "INFO" if verbose else "WARNING"}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return
    d = job.distributed
    need = math.ceil(d.num_workers * d.cpus_per_worker) + 1
    kwargs["num_cpus"] = max(os.cpu_count() or 1, need)
    if d.use_gpu:
        import torch

        kwargs["num_gpus"] = torch.cuda.device_count()
    ray.init(**kwargs)
