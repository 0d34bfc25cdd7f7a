"""The doctor's judging functions on hand-built facts: each failure names the node and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuneforge.config import load_config
from tuneforge.distributed import node_facts
from tuneforge.distributed.doctor import (
    Node,
    check_deepspeed,
    check_gpus,
    check_memory,
    check_mlflow,
    check_reached,
    check_resources,
    check_storage,
    check_versions,
    workers_on,
)
from tuneforge.models.model_shape import job_shape

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / "jobs" / "configs" / "finetune" / "tiny_cpu.yaml"
DRIVER = {
    "python": "3.11.7",
    "ray": "2.60.0",
    "torch": "2.13.0+cpu",
    "deepspeed": "0.19.8",
    "transformers": "5.23.0",
    "peft": "0.21.2",
    "mlflow": "3.17.2",
    "tuneforge": "0.1.0",
}
HEAD = Node("aaaaaaaa", "10.0.0.1/aaaaaa (head)", {"CPU": 2.0})
WORKER = Node("bbbbbbbb", "10.0.0.2/bbbbbb", {"CPU": 2.0})


def _facts(**over: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "versions": dict(DRIVER),
        "gpus_visible": 0,
        "gpu_memory": None,
        "memory_available": 16 * 2**30,
        "ds_accelerator": "cpu",
        "ds_builders": {"ShareMemCommBuilder": True, "CPUAdamBuilder": True},
        "ds_error": None,
        "compilers": {"g++": "/usr/bin/g++", "ninja": "/usr/bin/ninja"},
        "storage_error": None,
        "mlflow_error": None,
    }
    f.update(over)
    return f


def _job(*overrides: str):
    return load_config(TINY, list(overrides))


def test_mismatched_versions_fail_naming_the_node_and_package() -> None:
    other = _facts(versions={**DRIVER, "torch": "2.12.0", "python": "3.10.4"})
    checks = check_versions(DRIVER, [HEAD, WORKER], {HEAD.node_id: _facts(), WORKER.node_id: other})
    ok, bad = checks
    assert ok.ok and ok.node == HEAD.label
    assert not bad.ok and bad.node == WORKER.label
    assert "torch 2.12.0 (driver 2.13.0+cpu)" in bad.detail and "python 3.10.4" in bad.detail
    assert "torch==2.13.0+cpu" in bad.fix


def test_tuneforge_missing_on_a_node_passes_but_another_revision_fails() -> None:
    missing = _facts(versions={**DRIVER, "tuneforge": None})
    assert all(c.ok for c in check_versions(DRIVER, [WORKER], {WORKER.node_id: missing}))
    other = _facts(versions={**DRIVER, "tuneforge": "0.0.9"})
    (bad,) = check_versions(DRIVER, [WORKER], {WORKER.node_id: other})
    assert not bad.ok and "tuneforge 0.0.9" in bad.detail


def test_a_node_without_facts_fails_its_own_check_and_is_skipped_by_the_others() -> None:
    facts = {HEAD.node_id: _facts()}
    errors = {WORKER.node_id: "did not answer within the timeout"}
    (reached,) = check_reached([HEAD, WORKER], facts, errors)
    assert not reached.ok and reached.node == WORKER.label and "timeout" in reached.detail
    assert [c.node for c in check_versions(DRIVER, [HEAD, WORKER], facts)] == [HEAD.label]


def test_non_shared_storage_fails_naming_writer_and_reader() -> None:
    writes: dict[str, str | None] = {HEAD.node_id: None, WORKER.node_id: None}
    reads = {  # each node sees only its own file: a node-local dir
        HEAD.node_id: {HEAD.node_id: True, WORKER.node_id: False},
        WORKER.node_id: {HEAD.node_id: False, WORKER.node_id: True},
    }
    checks = check_storage("/data/shared", [HEAD, WORKER], writes, reads)
    assert [c.ok for c in checks] == [False, False]
    assert f"node {HEAD.label} wrote a file under /data/shared, node {WORKER.label} cannot see it" in (
        checks[0].detail
    )
    assert "shared filesystem" in checks[0].fix


def test_shared_storage_passes_and_a_write_error_fails() -> None:
    seen = {HEAD.node_id: True, WORKER.node_id: True}
    reads = {HEAD.node_id: seen, WORKER.node_id: seen}
    ok = check_storage("/s", [HEAD, WORKER], {HEAD.node_id: None, WORKER.node_id: None}, reads, seen)
    assert all(c.ok for c in ok)
    bad = check_storage("/s", [HEAD], {HEAD.node_id: "cannot write /s/x: Permission denied"}, {})
    assert not bad[0].ok and "Permission denied" in bad[0].detail


def test_storage_probe_files_round_trip_and_are_removed(tmp_path: Path) -> None:
    """The node-side helpers against real directories: two 'nodes' with node-local dirs do not see
    each other's files; on one shared dir they do; removal leaves nothing behind."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert node_facts.write_probe(str(a), "probe", "n1") is None
    assert node_facts.write_probe(str(b), "probe", "n2") is None
    assert node_facts.read_probes(str(a), "probe", ["n1", "n2"]) == {"n1": True, "n2": False}
    reads = {"n1": node_facts.read_probes(str(a), "probe", ["n1", "n2"])}
    reads["n2"] = node_facts.read_probes(str(b), "probe", ["n1", "n2"])
    nodes = [Node("n1", "one"), Node("n2", "two")]
    assert not any(c.ok for c in check_storage(str(tmp_path), nodes, {"n1": None, "n2": None}, reads))
    node_facts.write_probe(str(a), "probe", "n2")
    assert node_facts.read_probes(str(a), "probe", ["n1", "n2"]) == {"n1": True, "n2": True}
    for n in ("n1", "n2"):
        node_facts.remove_probe(str(a), "probe", n)
    assert not (a / "probe").exists()


def test_too_many_workers_fails_with_the_arithmetic() -> None:
    check = check_resources(_job("distributed.num_workers=8"), [HEAD, WORKER])
    assert not check.ok and check.name == "resources"
    assert "distributed.num_workers=8 x distributed.cpus_per_worker=0.5 + 1 for Ray Data = 5 CPUs" in (
        check.detail
    )
    assert "the cluster has 4" in check.detail
    assert check_resources(_job(), [HEAD, WORKER]).ok


def test_strict_spread_needs_a_node_per_worker() -> None:
    job = _job("distributed.num_workers=3", "distributed.placement_strategy=STRICT_SPREAD")
    check = check_resources(job, [HEAD, WORKER])
    assert not check.ok and "STRICT_SPREAD" in check.detail and "3 workers need 3 nodes" in check.detail
    assert "the cluster has 2" in check.detail
    assert check_resources(_job("distributed.placement_strategy=STRICT_SPREAD"), [HEAD, WORKER]).ok


def test_strict_pack_needs_one_node_for_all_workers() -> None:
    job = _job("distributed.num_workers=3", "distributed.cpus_per_worker=1")
    assert check_resources(job, [HEAD, WORKER]).ok
    packed = check_resources(_job("distributed.num_workers=3", "distributed.cpus_per_worker=1",
                                  "distributed.placement_strategy=STRICT_PACK"), [HEAD, WORKER])  # fmt: skip
    assert not packed.ok and "STRICT_PACK" in packed.detail and "largest node has 2 CPUs" in packed.detail


def test_gpus_torch_cannot_see_fail_and_use_gpu_counts_usable_ones() -> None:
    gpu_node = Node("cccccccc", "10.0.0.3/cccccc", {"CPU": 8.0, "GPU": 2.0})
    facts = {gpu_node.node_id: _facts(gpus_visible=1, gpu_memory=80 * 2**30)}
    node_check, cluster = check_gpus(_job("distributed.use_gpu=true"), [gpu_node], facts)
    assert not node_check.ok and "Ray offers 2 GPU(s) but torch sees 1" in node_check.detail
    assert not cluster.ok and "1 usable GPU(s)" in cluster.detail
    assert all(c.ok for c in check_gpus(None, [HEAD], {HEAD.node_id: _facts()}))


def test_missing_compiler_fails_the_deepspeed_check_when_an_op_must_be_built() -> None:
    facts = {HEAD.node_id: _facts(compilers={"g++": None, "ninja": "/usr/bin/ninja"})}
    (check,) = check_deepspeed(_job(), [HEAD], facts)
    assert not check.ok and "g++ missing" in check.detail and "ShareMemCommBuilder" in check.detail
    incompatible = {HEAD.node_id: _facts(ds_builders={"ShareMemCommBuilder": True, "CPUAdamBuilder": False})}
    (offload,) = check_deepspeed(_job("distributed.offload_optimizer=true"), [HEAD], incompatible)
    assert not offload.ok and "CPUAdamBuilder is not compatible" in offload.detail
    gpu_job_on_cpu = check_deepspeed(_job("distributed.use_gpu=true"), [HEAD], {HEAD.node_id: _facts()})
    assert not gpu_job_on_cpu[0].ok and "cpu accelerator" in gpu_job_on_cpu[0].detail
    assert check_deepspeed(_job(), [HEAD], {HEAD.node_id: _facts()})[0].ok


def test_mlflow_server_unreachable_from_one_node_fails_there() -> None:
    facts = {HEAD.node_id: _facts(), WORKER.node_id: _facts(mlflow_error="URLError: Connection refused")}
    ok, bad = check_mlflow("http://127.0.0.1:5000", [HEAD, WORKER], facts, "/s", True)
    assert ok.ok and not bad.ok and bad.node == WORKER.label and "Connection refused" in bad.detail


def test_sqlite_store_must_be_on_shared_storage_on_a_multi_node_cluster(tmp_path: Path) -> None:
    nodes, facts = [HEAD, WORKER], {}
    storage = str(tmp_path / "shared")
    outside = f"sqlite:///{tmp_path}/local/mlflow.db"
    (bad,) = check_mlflow(outside, nodes, facts, storage, True)
    assert not bad.ok and "not under the shared storage" in bad.detail
    inside = f"sqlite:///{storage}/mlflow.db"
    assert check_mlflow(inside, nodes, facts, storage, True)[0].ok
    assert not check_mlflow(inside, nodes, facts, storage, False)[0].ok  # storage itself not shared
    assert check_mlflow(outside, [HEAD], facts, storage, True)[0].ok  # one node: one machine's file is fine


def test_memory_uses_the_planner_per_node() -> None:
    job = _job()
    shape = job_shape(job)
    (fits,) = check_memory(job, [HEAD], {HEAD.node_id: _facts()}, shape)
    assert fits.ok and "ZeRO-2" in fits.detail and "x 2" in fits.detail
    (tight,) = check_memory(job, [HEAD], {HEAD.node_id: _facts(memory_available=64 * 2**20)}, shape)
    assert (
        not tight.ok
        and "does not fit in memory" in tight.detail
        and "2 worker(s) on this node" in tight.detail
    )
    (unknown,) = check_memory(job, [HEAD], {HEAD.node_id: _facts()}, ValueError("no config.json"))
    assert not unknown.ok and "no config.json" in unknown.detail


@pytest.mark.parametrize(("strategy", "expected"), [("PACK", 2), ("STRICT_SPREAD", 1)])
def test_workers_on_a_node_follow_the_placement(strategy: str, expected: int) -> None:
    job = _job("distributed.num_workers=6", f"distributed.placement_strategy={strategy}")
    assert workers_on(job, Node("x", "x", {"CPU": 1.0})) == expected
