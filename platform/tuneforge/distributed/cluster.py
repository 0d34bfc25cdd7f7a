"""Connecting to Ray: join the cluster a job was submitted to, or start a local instance.

Inside ``ray job submit`` (``RAY_ADDRESS`` is set) we call plain ``ray.init()``: passing resources
when connecting is an error. Locally we size the instance so that training workers *and* Ray Data
tasks fit (the small-machine deadlock in which Data gets no CPU is avoided by construction), but
never beyond what the machine can honestly promise (``preflight.local_num_cpus``).
"""

from __future__ import annotations

import logging
import os

import ray
import ray.data

from tuneforge.config import JobConfig
from tuneforge.distributed.preflight import local_num_cpus


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
    kwargs["num_cpus"] = local_num_cpus(job)  # honest: a request beyond it fails in check_cluster_fits
    if d.use_gpu:
        import torch

        kwargs["num_gpus"] = torch.cuda.device_count()
    ray.init(**kwargs)
