"""What ``tuneforge doctor`` reads on one node: versions, GPUs, memory, DeepSpeed ops, storage, MLflow.

These functions run *on the node*, as Ray tasks pinned to it, and only gather facts; judging them is
``distributed/doctor.py``'s job, on the driver, where they can be tested with hand-built facts.

Why this module imports nothing of tuneforge's (and only the standard library at module level): the
doctor ships these functions by value (``cloudpickle.register_pickle_by_value``), so a node that has
no tuneforge installed, or another revision of it, runs exactly this code. ``tuneforge submit`` ships
the library with each job, so a node without it is normal and must not break the diagnosis. torch,
DeepSpeed and psutil are imported inside the functions, each guarded: a node where one of them is
missing or broken reports that as a fact instead of failing the whole task.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import urllib.request
from pathlib import Path
from typing import Any

#: Distributions whose versions must agree between the driver and every node.
PACKAGES = ("ray", "torch", "deepspeed", "transformers", "peft", "mlflow", "tuneforge")
#: DeepSpeed op builders the doctor asks about (is_compatible only: nothing is compiled here).
BUILDERS = ("ShareMemCommBuilder", "CPUAdamBuilder")
#: Per-request timeout of the MLflow ``/health`` probe.
HTTP_TIMEOUT_S = 5.0


def versions() -> dict[str, str | None]:
    """Python and every package of ``PACKAGES`` (None: not installed), from metadata: nothing imported."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _gpus() -> dict[str, Any]:
    """GPUs torch sees here and the first one's memory (Ray leaves CUDA_VISIBLE_DEVICES alone at 0 GPUs)."""
    try:
        import torch

        count = int(torch.cuda.device_count())
        memory = int(torch.cuda.get_device_properties(0).total_memory) if count else None
        return {"gpus_visible": count, "gpu_memory": memory, "gpu_error": None}
    except Exception as e:  # a broken driver/CUDA install is the fact to report
        return {"gpus_visible": None, "gpu_memory": None, "gpu_error": f"{type(e).__name__}: {e}"}


def _memory_available() -> int | None:
    """Bytes of RAM available for new processes (psutil, else /proc/meminfo's MemAvailable)."""
    try:
        import psutil  # type: ignore[import-untyped]  # no stubs installed

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _deepspeed() -> dict[str, Any]:
    """The accelerator DeepSpeed picks here and whether each builder of ``BUILDERS`` could build."""
    out: dict[str, Any] = {
        "ds_accelerator": None,
        "ds_builders": {},
        "ds_error": None,
        "compilers": {"g++": shutil.which("g++") or shutil.which("c++"), "ninja": shutil.which("ninja")},
    }
    try:
        from deepspeed.accelerator import get_accelerator

        accelerator = get_accelerator()
        out["ds_accelerator"] = str(accelerator.device_name()).split(":")[0]
        for name in BUILDERS:
            builder = accelerator.create_op_builder(name)
            out["ds_builders"][name] = bool(builder is not None and builder.is_compatible(verbose=False))
    except Exception as e:
        out["ds_error"] = f"{type(e).__name__}: {e}"
    return out


def probe_path(storage: str, probe_dir: str, node_id: str) -> Path:
    """Where node ``node_id`` writes its probe file under the storage dir."""
    return Path(storage) / probe_dir / f"{node_id}.probe"


def write_probe(storage: str, probe_dir: str, node_id: str) -> str | None:
    """Write this node's probe file (its node id as content); the error in words, or None."""
    path = probe_path(storage, probe_dir, node_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(node_id)
        return None
    except OSError as e:
        return f"cannot write {path}: {e.strerror or e}"


def read_probes(storage: str, probe_dir: str, node_ids: list[str]) -> dict[str, bool]:
    """Which nodes' probe files this machine sees, each with the writer's id as its content."""
    seen = {}
    for node_id in node_ids:
        try:
            seen[node_id] = probe_path(storage, probe_dir, node_id).read_text() == node_id
        except OSError:
            seen[node_id] = False
    return seen


def remove_probe(storage: str, probe_dir: str, node_id: str) -> None:
    """Delete this node's probe file, and the probe dir once it is empty (whoever is last)."""
    path = probe_path(storage, probe_dir, node_id)
    for step in (path.unlink, path.parent.rmdir):
        try:
            step()
        except OSError:
            pass


def http_health(url: str | None) -> str | None:
    """GET ``<url>/health`` (the MLflow server's liveness route); the error in words, or None."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=HTTP_TIMEOUT_S) as r:
            return None if r.status == 200 else f"/health answered HTTP {r.status}"
    except Exception as e:
        return f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"


def gather(node_id: str, storage: str | None, probe_dir: str, health_url: str | None) -> dict[str, Any]:
    """Every fact the doctor judges, read on this node; the storage probe is written as a side effect."""
    facts: dict[str, Any] = {"node_id": node_id, "hostname": socket.gethostname()}
    facts["versions"] = versions()
    facts.update(_gpus())
    facts["memory_available"] = _memory_available()
    facts.update(_deepspeed())
    facts["storage_error"] = write_probe(storage, probe_dir, node_id) if storage else None
    facts["mlflow_error"] = http_health(health_url)
    facts["env"] = {k: os.environ.get(k) for k in ("DS_ACCELERATOR", "CUDA_VISIBLE_DEVICES")}
    return facts


__all__ = [
    "BUILDERS",
    "PACKAGES",
    "gather",
    "http_health",
    "probe_path",
    "read_probes",
    "remove_probe",
    "versions",
    "write_probe",
]
