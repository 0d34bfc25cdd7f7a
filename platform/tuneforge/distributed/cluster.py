"""Connecting to Ray: join the cluster a job was submitted to, or start a local instance.

Inside ``ray job submit`` (``RAY_ADDRESS`` is set) we call plain ``ray.init()``: passing resources
when connecting is an error. Locally we size the instance so that training workers *and* Ray Data
tasks fit (the small-machine deadlock in which Data gets no CPU is avoided by construction), but
never beyond what the machine can honestly promise (``preflight.local_num_cpus``).

Two tuneforge commands on one machine each start their own local instance and must not meet. Ray's
state API (used by Ray Train's placement-group cleaner inside the cluster) finds "the" cluster by
``RAY_ADDRESS``, else by scanning for GCS processes, and fails with "Found multiple active Ray
instances" when two run; the cleaner then dies and the worker group of an ended trial leaks its
CPUs. So a local instance gets its own GCS port, its own temp dir, and every process in it sees
``RAY_ADDRESS`` of its own instance.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import ray
import ray.data

from tuneforge.config import JobConfig
from tuneforge.distributed.preflight import LOCAL_ADDRESS_ENV, local_num_cpus, on_local_instance
from tuneforge.net import free_port


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
    kwargs: dict[str, Any] = {"log_to_driver": verbose, "logging_level": "INFO" if verbose else "WARNING"}
    if os.environ.get(LOCAL_ADDRESS_ENV) and on_local_instance():
        os.environ.pop("RAY_ADDRESS", None)  # our own earlier instance, shut down since: start a new one
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return
    d = job.distributed
    kwargs["num_cpus"] = local_num_cpus(job)  # honest: a request beyond it fails in check_cluster_fits
    if d.use_gpu:
        import torch

        kwargs["num_gpus"] = torch.cuda.device_count()
    start_private_instance(kwargs)


def start_private_instance(kwargs: dict[str, Any]) -> str:
    """Start a local Ray instance kept apart from any other on the machine; returns its address.

    The GCS port is chosen here (``RAY_GCS_SERVER_PORT``) so the address is known before start-up
    and handed to every worker through the job's runtime env; the temp dir is this process's own
    (short: unix socket paths are limited). Afterwards the driver's own ``RAY_ADDRESS`` points at
    it too, for the state API calls Tune and Train make from the driver.
    """
    port = free_port()
    address = f"127.0.0.1:{port}"
    os.environ["RAY_GCS_SERVER_PORT"] = str(port)
    temp_dir = tempfile.mkdtemp(prefix="tfray-", dir="/tmp")
    try:
        ray.init(
            _node_ip_address="127.0.0.1",
            _temp_dir=temp_dir,
            runtime_env={"env_vars": {"RAY_ADDRESS": address}},
            **kwargs,
        )
    finally:
        os.environ.pop("RAY_GCS_SERVER_PORT", None)
    os.environ["RAY_ADDRESS"] = address
    os.environ[LOCAL_ADDRESS_ENV] = address
    return address
