"""One real Ray head per test session, started with ``ray start --head`` on loopback.

Every integration test shares it (two Ray instances on one host confuse Ray Train's placement-group
cleaner), in-process drivers join it through ``RAY_ADDRESS``, and ``ray job submit`` talks to its
dashboard. ``ray start --block`` stays in the foreground, so terminating it stops exactly the
processes this session started and nothing else on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneforge.testing import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass
class RayHead:
    gcs_address: str
    dashboard_url: str
    env: dict[str, str]


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout_s}s")


@pytest.fixture(scope="session")
def tuneforge_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide TUNEFORGE_HOME: the embedded MLflow store and run dirs live here."""
    home = tmp_path_factory.mktemp("tuneforge_home")
    os.environ["TUNEFORGE_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return home


@pytest.fixture(scope="module", autouse=True)
def _restore_tracking_uri():
    """Give every module the tracking URI it started with.

    ``mlflow.set_tracking_uri`` (called by ``start_run`` and by tests) also *exports*
    ``MLFLOW_TRACKING_URI`` so that subprocesses inherit it; without this, a module that talked to a
    short-lived ``mlflow server`` would leave later modules' CLI subprocesses pointed at a dead port.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(before)  # sets, or unsets, the variable too
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def ray_head(tuneforge_home: Path):
    """Start the head, point this process at it, and stop it (by its own pid) at the end."""
    temp_dir = tempfile.mkdtemp(prefix="tfray-", dir="/tmp")  # short: unix socket paths are limited
    port, dash = free_port(), free_port()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=4",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        "--include-dashboard=true",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    log = open(Path(temp_dir) / "ray-start.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard_url = f"http://127.0.0.1:{dash}"
    try:
        _wait_http(f"{dashboard_url}/api/version", 90, proc)
    except Exception:
        proc.kill()
        raise
    old_address = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = f"127.0.0.1:{port}"
    yield RayHead(f"127.0.0.1:{port}", dashboard_url, env)
    import ray

    ray.shutdown()
    if old_address is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = old_address
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)  # a graceful stop of every head process takes ~30 s; nothing here needs it
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the head's own session: only what this test run started
    except ProcessLookupError:
        pass
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)
