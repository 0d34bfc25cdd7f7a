"""Running ``tuneforge doctor`` against a cluster: connect, ask every node, judge (``doctor.py``).

Kept apart from the judging functions so those stay pure and testable without Ray. Three rounds of
tasks, each pinned to its node with ``NodeAffinitySchedulingStrategy(soft=False)`` and zero CPUs, each
bounded by the timeout: gather the facts (and write the storage probe), read every node's probe back,
remove the probes. The node functions are shipped by value, so nodes need no tuneforge installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuneforge.config import JobConfig
from tuneforge.distributed import node_facts
from tuneforge.distributed.doctor import (
    Check,
    Facts,
    Node,
    check_deepspeed,
    check_gpus,
    check_memory,
    check_mlflow,
    check_reached,
    check_resources,
    check_storage,
    check_versions,
)

#: How long the GCS port may take to accept a TCP connection before "no cluster here".
CONNECT_PROBE_S = 5.0


def cluster_address(address: str | None) -> str:
    """``--address`` > ``$RAY_ADDRESS``: the GCS address (host:port); refused when neither is set."""
    value = address or os.environ.get("RAY_ADDRESS")
    if not value:
        raise ValueError(
            "no cluster address: pass --address HOST:PORT (the GCS, e.g. 127.0.0.1:6379) or set "
            "RAY_ADDRESS; for the local cluster, `source .tuneforge/cluster/cluster.env`"
        )
    if value.startswith(("http://", "https://", "ray://")):
        raise ValueError(f"--address {value}: give the GCS address HOST:PORT (e.g. 127.0.0.1:6379)")
    return value


@contextlib.contextmanager
def _stderr_to(path: str) -> Iterator[None]:
    """Send fd 2 (Ray's C++ core logs its retries there) to ``path`` while connecting."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def connect(address: str) -> None:
    """``ray.init(address=...)``, or one line saying why not (nothing listening, or the token).

    A TCP probe first: ``ray.init`` retries an address where nothing listens for minutes.
    """
    import ray

    from tuneforge.distributed.submit import AUTH_HINT

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_PROBE_S).close()
    except (OSError, ValueError) as e:
        raise ValueError(f"no Ray cluster answers at {address} ({e}); start it or fix --address") from None
    with tempfile.NamedTemporaryFile(prefix="tf-doctor-", suffix=".log") as log:
        try:
            with _stderr_to(log.name):
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as e:
            said = Path(log.name).read_text(errors="replace")
            if "Unauthenticated" in said or "InvalidAuthToken" in said:
                raise ValueError(f"the cluster at {address} refused the connection: {AUTH_HINT}") from None
            raise ValueError(f"cannot connect to the Ray cluster at {address}: {e}") from None


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes, head first, labelled ``ip/id-prefix`` (two nodes may share an IP)."""
    import ray

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = {k: float(v) for k, v in (n.get("Resources") or {}).items()}
        head = "node:__internal_head__" in res
        label = f"{n['NodeManagerAddress']}/{n['NodeID'][:6]}" + (" (head)" if head else "")
        nodes.append(Node(n["NodeID"], label, res))
    return sorted(nodes, key=lambda n: "(head)" not in n.label)


def _on_each(
    nodes: list[Node], fn: Callable[..., Any], args: Callable[[Node], tuple], deadline: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``fn(*args(node))`` pinned to every node; (results, errors) by node id, within ``deadline``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(fn)
    refs = {
        task.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False),
        ).remote(*args(n)): n.node_id
        for n in nodes
    }
    done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=max(0.0, deadline - time.monotonic()))
    results, errors = {}, {}
    for ref in done:
        try:
            results[refs[ref]] = ray.get(ref)
        except Exception as e:
            errors[refs[ref]] = f"its check task failed: {type(e).__name__}: {str(e).splitlines()[0]}"
    for ref in pending:
        errors[refs[ref]] = "did not answer within the timeout (--timeout); the node may be dead or hung"
        ray.cancel(ref, force=True)
    return results, errors


def tracking_uri_for(job: JobConfig | None, tracking_uri: str | None) -> str:
    """The store a run would log to (``--tracking-uri`` over the job's ``tracking.uri``), no db created."""
    from tuneforge.tracking.store import chosen_tracking_uri

    return chosen_tracking_uri(tracking_uri or (job.tracking.uri if job else None))


def storage_dir(storage: str | None) -> str:
    """``--storage`` > ``$TUNEFORGE_STORAGE`` > ``$TUNEFORGE_HOME`` (its default), absolute."""
    from tuneforge.distributed.submit import STORAGE_ENV, shared_storage
    from tuneforge.paths import tuneforge_home

    value = storage or os.environ.get(STORAGE_ENV)
    return shared_storage(value) if value else str(tuneforge_home())


def diagnose(
    job: JobConfig | None, storage: str, tracking_uri: str, timeout_s: float = 90.0
) -> tuple[list[Node], list[Check]]:
    """Ask every alive node for its facts and judge them (Ray must be connected: ``connect``)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(node_facts)  # nodes run this revision's probes
    nodes = alive_nodes()
    deadline = time.monotonic() + timeout_s
    probe_dir = f".tuneforge-doctor-{uuid.uuid4().hex[:12]}"
    health = _health_url(tracking_uri)
    facts: dict[str, Facts]
    facts, errors = _on_each(
        nodes, node_facts.gather, lambda n: (n.node_id, storage, probe_dir, health), deadline
    )
    ids = list(facts)
    reads, _ = _on_each(
        [n for n in nodes if n.node_id in facts],
        node_facts.read_probes,
        lambda n: (storage, probe_dir, ids),
        time.monotonic() + min(timeout_s, 30.0),
    )
    driver_reads = node_facts.read_probes(storage, probe_dir, ids)
    _on_each(
        [n for n in nodes if n.node_id in facts],
        node_facts.remove_probe,
        lambda n: (storage, probe_dir, n.node_id),
        time.monotonic() + 15.0,
    )
    for node_id in ids:  # what the nodes could not remove, if this machine sees it
        node_facts.remove_probe(storage, probe_dir, node_id)

    writes = {i: f.get("storage_error") for i, f in facts.items()}
    storage_checks = check_storage(storage, nodes, writes, reads, driver_reads)
    storage_ok = bool(storage_checks) and all(c.ok for c in storage_checks) and not errors
    checks = check_reached(nodes, facts, errors)
    checks += check_versions(node_facts.versions(), nodes, facts)
    checks += check_gpus(job, nodes, facts)
    checks.append(check_resources(job, nodes))
    checks += storage_checks
    checks += check_mlflow(tracking_uri, nodes, facts, storage, storage_ok)
    checks += check_deepspeed(job, nodes, facts)
    checks += check_memory(job, nodes, facts, _shape(job) if job else None)
    return nodes, checks


def _health_url(uri: str) -> str | None:
    """The server URL the nodes probe (userinfo dropped: ``/health`` needs no login), else None."""
    from urllib.parse import urlsplit, urlunsplit

    if not uri.startswith(("http://", "https://")):
        return None
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _shape(job: JobConfig) -> Any:
    """(shape, trainable) of the job's model, or the error that prevented reading it."""
    from tuneforge.distributed.preflight import converted_base
    from tuneforge.models.model_shape import job_shape

    try:
        return job_shape(job, converted_base(job))
    except Exception as e:
        return e


__all__ = ["cluster_address", "connect", "diagnose", "storage_dir", "tracking_uri_for"]
