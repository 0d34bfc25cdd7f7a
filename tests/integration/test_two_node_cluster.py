"""``tuneforge submit`` and ``tuneforge doctor`` against a real 2-node Ray cluster on this machine.

One cluster for the module, started by ``cluster/local/start.sh --worker`` (a head with an ``mlflow
server`` and a second Ray node with its own raylet and temp dir, token authentication on) and stopped
by ``cluster/local/stop.sh``, which kills only the process groups the script recorded.

What multi-node runs get wrong elsewhere, checked here: the workers really land on different nodes
(their actors' node ids, from Ray's state API), the job sees the library it was submitted with, results
reach the cluster's MLflow server and the shared storage path (not Ray's per-job copy of the working
dir), a job that exits 0 without training is a failure, and a node lost mid-run costs a restart from
the last checkpoint, not a hang.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _local_cluster import LocalCluster, local_cluster  # tests/integration/_local_cluster.py
from mlflow import MlflowClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "tuneforge")
RAY = str(Path(sys.executable).parent / "ray")
TINY = "jobs/configs/finetune/tiny_cpu.yaml"
CHECKS = {"versions", "gpus", "resources", "storage", "mlflow", "deepspeed", "memory"}


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(head_cpus=2, worker_cpus=2) as c:
        yield c


def _tuneforge(cluster: LocalCluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**cluster.env, "COLUMNS": "300"}
    return subprocess.run([EXE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _worker_nodes(cluster: LocalCluster, submission_id: str) -> set[str]:
    """Node ids of the job's Ray Train worker actors (dead ones included), through ``ray list actors``."""
    token = Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    request = urllib.request.Request(
        f"{cluster.dashboard_url}/api/jobs/{submission_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        job_hex = json.loads(r.read())["job_id"]
    out = subprocess.run(
        [RAY, "list", "actors", "--detail", "--format", "json", "--limit", "1000",
         "--address", cluster.dashboard_url, "-f", "class_name=RayTrainWorker", "-f", f"job_id={job_hex}"],
        env=cluster.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {a["node_id"] for a in json.loads(out.stdout)}


def test_the_documented_local_cluster_commands_run(cluster: LocalCluster) -> None:
    """docs/cluster.md's block: its first and last lines (start.sh --worker, stop.sh) are what the
    module's fixture runs; the lines between run here as written, against that cluster (the ``source``
    line reads the fixture's own state dir)."""
    text = (REPO / "docs/cluster.md").read_text().split("## 1. On this machine", 1)[1]
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert lines[0] == "cluster/local/start.sh --worker" and lines[-1] == "cluster/local/stop.sh"
    middle = [line.replace(".tuneforge/cluster/", f"{cluster.state_dir}/") for line in lines[1:-1]]
    assert middle[0].startswith("source ") and any("tuneforge submit" in line for line in middle)
    env = {k: v for k, v in cluster.env.items() if not k.startswith(("RAY_ADDRESS", "RAY_API", "RAY_AUTH"))}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(middle)], cwd=REPO, env={**env, "COLUMNS": "300"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "step 10/10 train_loss" in out.stdout  # --follow streamed the job's logs
    assert re.search(r"done job raysubmit_\w+: trained 10 steps", out.stderr), out.stderr[-3000:]
    assert re.search(r"raysubmit_\w+\s+SUCCEEDED", out.stdout)  # tuneforge jobs list
    job_id = re.search(r"submitted (raysubmit_\w+)", out.stderr).group(1)

    # STRICT_SPREAD: the two Train workers ran on the two nodes.
    assert len(_worker_nodes(cluster, job_id)) == 2

    # Everything the run wrote is on the shared storage ($TUNEFORGE_STORAGE of cluster.env), none in
    # the job's working-dir copy: the run dir with its checkpoint, and the token cache.
    storage = Path(cluster.env["TUNEFORGE_STORAGE"])
    (run_dir,) = list((storage / "runs").iterdir())
    assert list(run_dir.glob("ray/*/checkpoint_*")) and (storage / "cache" / "tokenized").is_dir()

    # The cluster's MLflow server has the run, and the version the job registered comes from it.
    client = MlflowClient(cluster.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tuneforge-demo").experiment_id])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    (version,) = client.search_model_versions("name = 'tuneforge-tiny'")
    assert version.run_id == run.info.run_id


def test_a_job_that_trains_nothing_is_reported_as_failed(cluster: LocalCluster, tmp_path: Path):
    out = _tuneforge(
        cluster, "submit", TINY, "--entrypoint", "tests/fixtures/jobs/trains_nothing.py",
        "--storage", str(tmp_path), "--wait", timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "exited 0 but trained zero steps" in out.stderr and "Traceback" not in out.stderr
    job_id = next(w for w in out.stderr.split() if w.startswith("raysubmit_"))
    status = _tuneforge(cluster, "jobs", "status", job_id, timeout=60)  # Ray says SUCCEEDED; we do not
    assert status.returncode == 1 and "SUCCEEDED; the job exited 0 but trained zero steps" in status.stderr


def _doctor(cluster: LocalCluster, storage: Path, *overrides: str) -> tuple[int, dict, str]:
    args = ["doctor", "--config", "jobs/configs/finetune/tiny_cpu.yaml", *overrides]
    out = subprocess.run(
        [EXE, *args, "--storage", str(storage), "--json"],
        env={**cluster.env, "COLUMNS": "200"}, cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return out.returncode, report, out.stdout + out.stderr


def test_doctor_passes_on_a_healthy_two_node_cluster(cluster: LocalCluster, tmp_path: Path) -> None:
    rc, report, text = _doctor(cluster, tmp_path)
    assert rc == 0 and report["ok"], text
    assert report["nodes"] == 2
    assert {c["name"] for c in report["checks"]} == CHECKS
    assert all(c["ok"] for c in report["checks"]), text
    storage = [c for c in report["checks"] if c["name"] == "storage"]
    assert len({c["node"] for c in storage}) == 2  # each node wrote, the other read it back
    mlflow = [c for c in report["checks"] if c["name"] == "mlflow"]
    assert len(mlflow) == 2 and all("/health: ok" in c["detail"] for c in mlflow)
    assert list(tmp_path.iterdir()) == []  # probe files cleaned up


def test_doctor_fails_when_workers_exceed_the_cpus(cluster: LocalCluster, tmp_path: Path) -> None:
    rc, report, text = _doctor(cluster, tmp_path, "distributed.num_workers=8")
    assert rc == 1 and not report["ok"], text
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["resources"], text
    assert "+ 1 for Ray Data = 5 CPUs, but the cluster has 4" in failed[0]["detail"]
    assert "error:" in text and "(resources)" in text


def test_doctor_fails_strict_spread_with_more_workers_than_nodes(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    rc, report, text = _doctor(
        cluster, tmp_path, "distributed.num_workers=3", "distributed.placement_strategy=STRICT_SPREAD"
    )
    assert rc == 1 and not report["ok"], text
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["resources"], text
    assert "3 workers need 3 nodes" in failed[0]["detail"] and "the cluster has 2" in failed[0]["detail"]


# Last: it takes the second node away.
@pytest.mark.slow  # ~4 min: a run that loses a node and restarts from its checkpoint
def test_losing_a_node_mid_run_restarts_from_the_checkpoint(cluster: LocalCluster, tmp_path: Path):
    """The second node's raylet is killed once the run has a checkpoint. With SPREAD (soft) placement
    the restarted worker group fits on the head, so the job must finish every step; it must never hang."""
    storage = tmp_path / "shared"
    steps = 24
    submit = _tuneforge(
        cluster, "submit", TINY, f"trainer.max_steps={steps}", "trainer.checkpoint_every=4",
        "trainer.eval_every=0", "distributed.placement_strategy=SPREAD", "tracking.run_name=loses-a-node",
        "registry.model_name=null", "registry.promote=false", "--storage", str(storage), "--json",
        timeout=120,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr[-3000:]
    job_id = _last_json(submit.stdout)["job_id"]
    deadline = time.monotonic() + 300
    while not list(storage.glob("runs/loses-a-node/ray/*/checkpoint_*")):
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(2)
    assert len(_worker_nodes(cluster, job_id)) == 2  # one worker was on the node about to go
    os.killpg(cluster.worker_pgid(1), signal.SIGKILL)  # the node's raylet, object store and workers

    status = _tuneforge(cluster, "jobs", "logs", job_id, "--follow", timeout=600)
    assert status.returncode == 0, status.stderr[-3000:]
    final = _tuneforge(cluster, "jobs", "status", job_id, "--json", timeout=60)
    assert final.returncode == 0, final.stderr + status.stdout[-4000:]
    assert _last_json(final.stdout)["reason"] == f"trained {steps} steps"
    assert f"step {steps}/{steps} train_loss" in status.stdout
