"""A real multi-node Ray cluster on this machine, started and stopped by the shipped scripts.

``cluster/local/start.sh --worker`` starts a head (token auth on, loopback), an ``mlflow server`` and a
second Ray node with its own raylet, object store and temp dir; ``cluster/local/stop.sh`` stops exactly
those process groups. Each use gets its own short state dir and free ports, so it never touches the
suite's session head or a user's cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tuneforge.testing import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalCluster:
    state_dir: Path
    env: dict[str, str]  # os.environ plus cluster.env: what a user has after `source cluster.env`

    @property
    def dashboard_url(self) -> str:
        return self.env["RAY_API_SERVER_ADDRESS"]

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    def worker_pgid(self, n: int = 1) -> int:
        return int((self.state_dir / f"worker{n}.pgid").read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """``export K=V`` lines, as ``source`` would set them."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key and value:
            out[key.strip()] = value.strip()
    return out


@contextmanager
def local_cluster(head_cpus: int = 2, worker_cpus: int = 2, timeout: float = 240) -> Iterator[LocalCluster]:
    """Start head + one worker node + mlflow server; yield; stop them (even if the start failed)."""
    state = Path(tempfile.mkdtemp(prefix="tfc-", dir="/tmp"))  # short: Ray's unix socket paths
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_API_SERVER", "RAY_AUTH"))
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        TUNEFORGE_CLUSTER_DIR=str(state), RAY_PORT=str(free_port()), DASHBOARD_PORT=str(free_port()),
        MLFLOW_PORT=str(free_port()), HEAD_CPUS=str(head_cpus), WORKER_CPUS=str(worker_cpus),
        TUNEFORGE_STORAGE=str(state / "storage"),
    )  # fmt: skip
    try:
        out = subprocess.run(
            [str(REPO / "cluster/local/start.sh"), "--worker"], env=env, cwd=REPO, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        yield LocalCluster(state, {**env, **read_env_file(state / "cluster.env")})
    finally:
        subprocess.run(
            [str(REPO / "cluster/local/stop.sh")], env=env, cwd=REPO, capture_output=True, timeout=120
        )
        shutil.rmtree(state, ignore_errors=True)
