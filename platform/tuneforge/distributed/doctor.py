"""``tuneforge doctor``: judge a Ray cluster for a job before any GPU is reserved.

Multi-node runs fail late and far from their cause: a package one node has in another version, a
storage dir that is node-local, a tracking URI that only the head can reach, a worker group that can
never be placed. The doctor asks every node for its facts (``node_facts.gather``, a Ray task pinned to
the node, zero CPUs so a busy cluster still answers, bounded by a timeout so a hung node fails instead
of hanging the command) and judges them here with pure functions of those facts, each giving a
``Check``: pass or fail, what was seen, and the fix.

The resource and memory judgements reuse the training path's own arithmetic (``preflight.fit_problem``,
``DATA_CPUS``, the memory planner), so the doctor and ``tuneforge train`` cannot disagree.

Over 300 lines on purpose: one pure judging function per check, side by side, so every verdict and
fix the doctor can print reads in one place (gathering is ``node_facts.py``, Ray is ``doctor_run.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tuneforge.config import JobConfig
from tuneforge.distributed.node_facts import PACKAGES

#: Facts one node reported (``node_facts.gather``'s dict).
Facts = dict[str, Any]
#: The label of the machine running the doctor, in storage checks.
DRIVER = "this machine"


@dataclass(frozen=True)
class Check:
    """One verdict: which check, on which node (or ``cluster``), pass/fail, what was seen, the fix."""

    name: str
    node: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Node:
    """An alive Ray node: its id, a printable label and its Ray resources (``CPU``, ``GPU``, ...)."""

    node_id: str
    label: str
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def cpus(self) -> float:
        return float(self.resources.get("CPU", 0.0))

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0.0))


def check_reached(nodes: list[Node], facts: dict[str, Facts], errors: dict[str, str]) -> list[Check]:
    """A failing check for each node that gave no facts (dead, hung, or its task raised)."""
    return [
        Check(
            "node",
            n.label,
            False,
            errors.get(n.node_id, "gave no answer"),
            "check that node's raylet (`ray status`, its logs under the Ray temp dir) or remove it",
        )
        for n in nodes
        if n.node_id not in facts
    ]


def check_versions(driver: dict[str, str | None], nodes: list[Node], facts: dict[str, Facts]) -> list[Check]:
    """Python (major.minor) and each package of ``PACKAGES`` on every node equal to the driver's.

    A node without tuneforge installed passes: ``tuneforge submit`` ships the library with each job.
    """
    out = []
    for n in (n for n in nodes if n.node_id in facts):
        theirs = facts[n.node_id].get("versions", {})
        wrong = []
        if _minor(theirs.get("python")) != _minor(driver.get("python")):
            wrong.append(f"python {theirs.get('python')} (driver {driver.get('python')})")
        for name in PACKAGES:
            mine, other = driver.get(name), theirs.get(name)
            if other != mine and not (name == "tuneforge" and other is None):
                wrong.append(f"{name} {other or 'missing'} (driver {mine or 'missing'})")
        if wrong:
            pins = " ".join(f"{p}=={driver[p]}" for p in PACKAGES if driver.get(p) and p != "tuneforge")
            fix = (
                f"install the driver's versions on {n.label} (pip install {pins}) "
                "or run every node from one image"
            )
            out.append(Check("versions", n.label, False, "differs from the driver: " + ", ".join(wrong), fix))
        else:
            seen = ", ".join(f"{k} {theirs.get(k)}" for k in ("python", "ray", "torch", "deepspeed"))
            out.append(Check("versions", n.label, True, f"same as the driver ({seen}, ...)"))
    return out


def _minor(version: str | None) -> str | None:
    return ".".join(version.split(".")[:2]) if version else None


def check_gpus(job: JobConfig | None, nodes: list[Node], facts: dict[str, Facts]) -> list[Check]:
    """Per node: the GPUs torch sees equal the node's Ray ``GPU`` resource; with ``use_gpu``, enough
    usable GPUs (seen by torch and offered to Ray) for one per worker."""
    out, usable = [], 0
    for n in (n for n in nodes if n.node_id in facts):
        f = facts[n.node_id]
        seen, offered = f.get("gpus_visible"), int(n.gpus)
        if seen is None:
            out.append(
                Check(
                    "gpus",
                    n.label,
                    False,
                    f"torch cannot count GPUs: {f.get('gpu_error')}",
                    "fix the node's torch/CUDA install",
                )
            )
            continue
        usable += min(seen, offered)
        if seen != offered:
            out.append(
                Check(
                    "gpus",
                    n.label,
                    False,
                    f"Ray offers {offered} GPU(s) but torch sees {seen}",
                    f"start the node's raylet with --num-gpus={seen}, or fix its NVIDIA driver / "
                    "CUDA_VISIBLE_DEVICES",
                )
            )
        else:
            out.append(Check("gpus", n.label, True, f"{seen} GPU(s), as Ray offers"))
    if job is not None and job.distributed.use_gpu:
        need = job.distributed.num_workers
        ok = usable >= need
        out.append(
            Check(
                "gpus",
                "cluster",
                ok,
                f"distributed.use_gpu: {need} worker(s) x 1 GPU, {usable} usable GPU(s) on the cluster",
                "" if ok else "lower distributed.num_workers or add GPU nodes",
            )
        )
    return out


def placement_problem(job: JobConfig, nodes: list[Node]) -> str | None:
    """Why ``distributed.placement_strategy`` cannot place the workers on these nodes, or None."""
    d = job.distributed
    gpu = 1.0 if d.use_gpu else 0.0
    per_worker = f"{d.cpus_per_worker:g} CPU" + (" + 1 GPU" if d.use_gpu else "")
    if d.placement_strategy == "STRICT_SPREAD":
        able = [n for n in nodes if n.cpus + 1e-9 >= d.cpus_per_worker and n.gpus + 1e-9 >= gpu]
        if d.num_workers > len(able):
            return (
                f"distributed.placement_strategy=STRICT_SPREAD puts at most one worker per node: "
                f"{d.num_workers} workers need {d.num_workers} nodes that each hold one ({per_worker}), "
                f"the cluster has {len(able)}; lower distributed.num_workers to {len(able)} "
                "or use SPREAD/PACK"
            )
    if d.placement_strategy == "STRICT_PACK":
        cpus, gpus = d.num_workers * d.cpus_per_worker, d.num_workers * gpu
        if not any(n.cpus + 1e-9 >= cpus and n.gpus + 1e-9 >= gpus for n in nodes):
            return (
                f"distributed.placement_strategy=STRICT_PACK puts every worker on one node: {d.num_workers} "
                f"workers x {per_worker} = {cpus:g} CPUs"
                + (f" + {gpus:g} GPUs" if gpu else "")
                + f", the largest node has {max((n.cpus for n in nodes), default=0):g} CPUs; use PACK"
            )
    return None


def check_resources(job: JobConfig | None, nodes: list[Node]) -> Check:
    """The cluster's CPU/GPU totals against workers x resources + the Ray Data CPU, and the placement."""
    from tuneforge.distributed.preflight import fit_problem

    total = {k: sum(n.resources.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    seen = f"{len(nodes)} node(s), {total['CPU']:g} CPUs, {total['GPU']:g} GPUs"
    if job is None:
        return Check("resources", "cluster", True, f"{seen} (pass --config to check a job against them)")
    problems = [
        p
        for p in (fit_problem(job, total, [n.resources for n in nodes], False), placement_problem(job, nodes))
        if p
    ]
    if problems:
        return Check(
            "resources",
            "cluster",
            False,
            "; ".join(problems),
            "lower distributed.num_workers / cpus_per_worker, change placement_strategy, or add nodes",
        )
    d = job.distributed
    return Check(
        "resources",
        "cluster",
        True,
        f"{d.num_workers} workers x {d.cpus_per_worker:g} CPU + data fit {seen} ({d.placement_strategy})",
    )


def check_storage(
    storage: str,
    nodes: list[Node],
    writes: dict[str, str | None],
    reads: dict[str, dict[str, bool]],
    driver_reads: dict[str, bool] | None = None,
) -> list[Check]:
    """Every node wrote a probe under ``storage`` and every other node read it back.

    ``writes``: node id -> write error (None: written); ``reads``: reader node id -> {writer id: seen}.
    What this machine sees (``driver_reads``) is reported but does not decide: it may not be a node.
    """
    labels = {n.node_id: n.label for n in nodes}
    fix = (
        f"mount one shared filesystem (NFS, a bucket through s3fs/gcsfuse) at {storage} on every node, "
        "or pass --storage (TUNEFORGE_STORAGE) a path that is shared"
    )
    out = []
    for n in (n for n in nodes if n.node_id in writes):
        error = writes[n.node_id]
        if error:
            out.append(Check("storage", n.label, False, error, fix))
            continue
        blind = [labels[r] for r, seen in reads.items() if r != n.node_id and not seen.get(n.node_id)]
        if blind:
            out.append(
                Check(
                    "storage",
                    n.label,
                    False,
                    f"node {n.label} wrote a file under {storage}, node {', '.join(blind)} cannot see "
                    "it: the directory is not shared",
                    fix,
                )
            )
            continue
        note = "" if driver_reads is None or driver_reads.get(n.node_id) else f"; {DRIVER} cannot see it"
        out.append(Check("storage", n.label, True, f"wrote under {storage}, every node read it{note}"))
    return out


def check_mlflow(
    uri: str, nodes: list[Node], facts: dict[str, Facts], storage: str, storage_ok: bool
) -> list[Check]:
    """http(s): ``/health`` answered from every node. sqlite: one machine's file, so on more than one
    node it must sit on the shared storage that passed its check. Other stores are not probed."""
    from tuneforge.tracking.redact import redact_uri
    from tuneforge.tracking.store import sqlite_db_path

    shown = redact_uri(uri)
    if uri.startswith(("http://", "https://")):
        out = []
        for n in (n for n in nodes if n.node_id in facts):
            error = facts[n.node_id].get("mlflow_error")
            out.append(
                Check(
                    "mlflow",
                    n.label,
                    error is None,
                    f"{shown}/health: " + (error or "ok"),
                    ""
                    if error is None
                    else "run the tracking server bound to an address every node can reach "
                    "(not loopback on a multi-node cluster) and set MLFLOW_TRACKING_URI",
                )
            )
        return out
    db = sqlite_db_path(uri)
    if db is None:
        return [Check("mlflow", "cluster", True, f"{shown}: not probed (neither a server nor sqlite)")]
    if len(nodes) <= 1:
        return [Check("mlflow", "cluster", True, f"{shown}: a sqlite file on a one-node cluster")]
    under = db.resolve().is_relative_to(storage)
    if under and storage_ok:
        return [Check("mlflow", "cluster", True, f"{shown}: on the shared storage {storage}")]
    why = (
        "its storage is not shared (see the storage check)"
        if under
        else f"it is not under the shared storage {storage}"
    )
    return [
        Check(
            "mlflow",
            "cluster",
            False,
            f"{shown} is a file on one machine and {len(nodes)} nodes log to it: {why}",
            f"use tracking.uri=sqlite:///{storage}/mlflow.db on shared storage, or run an mlflow server",
        )
    ]


def needed_builders(job: JobConfig | None, accelerator: str | None) -> list[str]:
    """The DeepSpeed ops a run compiles on first use: the shared-memory comm op on the CPU accelerator
    (every fresh ``deepspeed.initialize``), DeepSpeedCPUAdam's op with optimizer offload."""
    need = ["ShareMemCommBuilder"] if accelerator == "cpu" else []
    if job is not None and job.distributed.offload_optimizer:
        need.append("CPUAdamBuilder")
    return need


def check_deepspeed(job: JobConfig | None, nodes: list[Node], facts: dict[str, Facts]) -> list[Check]:
    """Per node: the accelerator DeepSpeed picks suits the job, the ops it needs are compatible, and a
    C++ compiler and ninja are there to build them (nothing is compiled by the doctor)."""
    out = []
    for n in (n for n in nodes if n.node_id in facts):
        f = facts[n.node_id]
        if f.get("ds_error"):
            out.append(
                Check(
                    "deepspeed",
                    n.label,
                    False,
                    f"deepspeed does not load: {f['ds_error']}",
                    "reinstall deepspeed on the node (the driver's version)",
                )
            )
            continue
        accel = f.get("ds_accelerator")
        problems = []
        if job is not None and job.distributed.use_gpu and accel == "cpu":
            problems.append(
                "distributed.use_gpu but DeepSpeed picks the cpu accelerator (DS_ACCELERATOR=cpu or no CUDA)"
            )
        need = needed_builders(job, accel)
        problems += [f"{b} is not compatible here" for b in need if not f.get("ds_builders", {}).get(b)]
        tools = f.get("compilers", {})
        missing = [t for t in ("g++", "ninja") if not tools.get(t)]
        if need and missing:
            problems.append(f"{' and '.join(missing)} missing: {', '.join(need)} compile on first use")
        detail = (
            f"accelerator {accel}; ops {', '.join(need) or 'none needed'}; "
            f"g++ {tools.get('g++') or 'missing'}, ninja {tools.get('ninja') or 'missing'}"
        )
        fix = (
            "install g++ and ninja on the node (apt-get install g++ ninja-build), "
            "and set DS_ACCELERATOR to match the job"
        )
        out.append(
            Check("deepspeed", n.label, not problems, "; ".join(problems) or detail, fix if problems else "")
        )
    return out


def workers_on(job: JobConfig, node: Node) -> int:
    """Most of the job's workers Ray may put on ``node``: one under STRICT_SPREAD, else what its CPUs hold."""
    d = job.distributed
    if d.placement_strategy == "STRICT_SPREAD":
        return 1
    fit = int(node.cpus / d.cpus_per_worker + 1e-9)
    if d.use_gpu:
        fit = min(fit, int(node.gpus))
    return min(d.num_workers, fit)


def check_memory(
    job: JobConfig | None, nodes: list[Node], facts: dict[str, Facts], shape: Any = None
) -> list[Check]:
    """Per node: the planned ZeRO stage/offload fits the worker's memory (the planner of ``tuneforge plan``).

    A CPU worker gets the node's available RAM shared by the most workers the node may hold; a GPU
    worker its device's memory, with the offloaded bytes of the node's workers in host RAM.
    ``shape`` is ``models.model_shape.job_shape``'s (shape, trainable) or an Exception it raised.
    """
    from tuneforge.models.memory_plan import HEADROOM, describe, plan, problem, requested

    out = []
    for n in (n for n in nodes if n.node_id in facts):
        avail = facts[n.node_id].get("memory_available")
        gib = f"{avail / 2**30:.1f} GiB available" if avail else "memory unknown"
        if job is None or avail is None:
            out.append(Check("memory", n.label, True, gib))
            continue
        if isinstance(shape, Exception):
            out.append(Check("memory", n.label, False, f"cannot size the model: {shape}", "check model.*"))
            continue
        k = workers_on(job, n)
        if k == 0:
            out.append(Check("memory", n.label, True, f"{gib}; holds none of the job's workers"))
            continue
        gpu_mem = facts[n.node_id].get("gpu_memory")
        worker = int(gpu_mem) if job.distributed.use_gpu and gpu_mem else avail // k
        p = plan(job, shape[0], shape[1], job.distributed.num_workers, worker)
        why = problem(job, p)
        chosen = requested(job, p)
        if (
            why is None
            and chosen is not None
            and job.distributed.use_gpu
            and chosen.offloaded * k > avail * HEADROOM
        ):
            why = f"{k} worker(s) offload {chosen.offloaded * k / 2**30:.2f} GiB to host RAM, which has {gib}"
        if why:
            out.append(
                Check(
                    "memory",
                    n.label,
                    False,
                    f"{why} ({k} worker(s) on this node)",
                    "use zero_stage: auto (or a higher stage/offload), fewer workers per node "
                    "(cpus_per_worker, SPREAD) or a node with more memory",
                )
            )
        else:
            assert chosen is not None
            out.append(
                Check(
                    "memory",
                    n.label,
                    True,
                    f"{describe(chosen)}: {chosen.total / 2**30:.2f} GiB per worker x {k}, {gib}",
                )
            )
    return out


__all__ = [
    "DRIVER",
    "Check",
    "Facts",
    "Node",
    "check_deepspeed",
    "check_gpus",
    "check_memory",
    "check_mlflow",
    "check_reached",
    "check_resources",
    "check_storage",
    "check_versions",
    "needed_builders",
    "placement_problem",
    "workers_on",
]
