"""``tuneforge doctor`` against a real 2-node cluster on this machine (``cluster/local/start.sh --worker``).

One cluster for the module (a head with an ``mlflow server``, plus a second Ray node with its own raylet
and temp dir), token authentication on, as users run it; the doctor runs as a subprocess with the
cluster's ``cluster.env`` in its environment. Stopped by ``cluster/local/stop.sh``, which kills only
the process groups ``start.sh`` recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge.testing import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "tuneforge")
CHECKS = {"versions", "gpus", "resources", "storage", "mlflow", "deepspeed", "memory"}


def _port() -> int:
    """A free port outside Ray's worker port range (10002-19999)."""
    while 10002 <= (port := free_port()) <= 19999:
        pass
    return port


def _cluster_env(path: Path) -> dict[str, str]:
    """``export K=V`` lines of cluster.env as a dict."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key and value:
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """Start the 2-node local cluster once; yield the doctor's environment; stop it by its pgids."""
    state = tempfile.mkdtemp(prefix="tfd-", dir="/tmp")  # short: Ray's unix socket paths are limited
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    for var in ("MLFLOW_TRACKING_URI", "TUNEFORGE_STORAGE"):
        base.pop(var, None)
    env = {
        **base,
        "TUNEFORGE_CLUSTER_DIR": state,
        "RAY_PORT": str(_port()),
        "DASHBOARD_PORT": str(_port()),
        "MLFLOW_PORT": str(_port()),
        "HEAD_CPUS": "2",
        "WORKER_CPUS": "2",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        start = subprocess.run(
            [str(REPO / "cluster/local/start.sh"), "--worker"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert start.returncode == 0, start.stdout + start.stderr
        yield {**base, **_cluster_env(Path(state) / "cluster.env"), "COLUMNS": "200"}
    finally:
        subprocess.run(
            [str(REPO / "cluster/local/stop.sh")], env=env, cwd=REPO, capture_output=True, timeout=120
        )
        shutil.rmtree(state, ignore_errors=True)


def _doctor(env: dict[str, str], storage: Path, *overrides: str) -> tuple[int, dict, str]:
    args = ["doctor", "--config", "jobs/configs/finetune/tiny_cpu.yaml", *overrides]
    out = subprocess.run(
        [EXE, *args, "--storage", str(storage), "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return out.returncode, report, out.stdout + out.stderr


def test_doctor_passes_on_a_healthy_two_node_cluster(cluster: dict[str, str], tmp_path: Path) -> None:
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


def test_doctor_fails_when_workers_exceed_the_cpus(cluster: dict[str, str], tmp_path: Path) -> None:
    rc, report, text = _doctor(cluster, tmp_path, "distributed.num_workers=8")
    assert rc == 1 and not report["ok"], text
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["resources"], text
    assert "+ 1 for Ray Data = 5 CPUs, but the cluster has 4" in failed[0]["detail"]
    assert "error:" in text and "(resources)" in text


def test_doctor_fails_strict_spread_with_more_workers_than_nodes(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    rc, report, text = _doctor(
        cluster, tmp_path, "distributed.num_workers=3", "distributed.placement_strategy=STRICT_SPREAD"
    )
    assert rc == 1 and not report["ok"], text
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["resources"], text
    assert "3 workers need 3 nodes" in failed[0]["detail"] and "the cluster has 2" in failed[0]["detail"]
