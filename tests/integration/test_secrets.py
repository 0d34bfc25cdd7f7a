"""No secret reaches what a run records: a real train against a real ``mlflow server`` on loopback.

The tracking URI carries a password in its userinfo (``http://user:<secret>@127.0.0.1:<port>``; the
server has no auth and ignores the basic-auth header MLflow's client sends from it), and credential
variables (``MLFLOW_TRACKING_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``) are set for the run.
The run must train, log and register through that URI, and afterwards no planted string may
appear anywhere in the server's store (database and WAL bytes, every artifact file), in
``$TUNEFORGE_HOME`` (run dir with ``job.yaml``, checkpoints, Ray Train storage, caches), or in
what the CLI printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _mlflow_server import mlflow_server as start_mlflow_server  # tests/integration/_mlflow_server.py
from mlflow import MlflowClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = "jobs/configs/finetune/tiny_cpu.yaml"
PLANTED = {
    "uri_password": "PLANTEDuriPw8841",
    "MLFLOW_TRACKING_TOKEN": "PLANTEDmlflowTok5521",
    "AWS_SECRET_ACCESS_KEY": "PLANTEDawsKey9034",
    "HF_TOKEN": "PLANTEDhfTok1177",
}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets-server")
    with start_mlflow_server(root) as url:
        yield url, root


def _hits(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for f in root.rglob("*"):
        if f.is_file() and not f.is_symlink():
            data = f.read_bytes()
            found += [f"{f}: {n.decode()}" for n in needles if n in data]
    return found


def test_planted_secrets_are_recorded_nowhere(ray_head, tuneforge_home, mlflow_server):
    url, server_root = mlflow_server
    port = url.rsplit(":", 1)[1]
    secret_uri = f"http://tuneforge:{PLANTED['uri_password']}@127.0.0.1:{port}"
    env = {**os.environ, **{k: v for k, v in PLANTED.items() if k != "uri_password"}}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        str(BIN / "tuneforge"),
        "train",
        TINY,
        f"tracking.uri={secret_uri}",
        "tracking.experiment=secrets",
        "tracking.run_name=secrets-run",
        "registry.model_name=secrets-model",
        "registry.promote=false",
        "distributed.num_workers=1",
        "distributed.zero_stage=0",
        "trainer.max_steps=4",
        "trainer.eval_every=4",
        "trainer.log_every=2",
        "--json",
    ]
    started = time.monotonic()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])

    # The run really went through the password-carrying URI: it is in the server's store.
    client = MlflowClient(url)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and summary["steps"] == 4
    assert run.data.params["tracking.uri"] == f"http://tuneforge:***@127.0.0.1:{port}"
    assert run.data.tags["tuneforge.trust_remote_code"] == "false"
    assert client.get_model_version("secrets-model", summary["version"]).run_id == summary["run_id"]
    assert summary["tracking_uri"] == f"http://tuneforge:***@127.0.0.1:{port}"
    assert (Path(summary["run_dir"]) / "job.yaml").exists()

    needles = [v.encode() for v in PLANTED.values()]
    where = {
        "mlflow server store": server_root,
        "TUNEFORGE_HOME": tuneforge_home,
        "run dir": Path(summary["run_dir"]),
    }
    hits = {name: _hits(root, needles) for name, root in where.items()}
    printed = [
        line for line in (out.stdout + out.stderr).splitlines() if any(v in line for v in PLANTED.values())
    ]
    files = sum(1 for root in where.values() for f in root.rglob("*") if f.is_file())
    print(f"secrets: {len(PLANTED)} planted, {files} files scanned, train wall {wall:.0f}s")
    assert hits == {name: [] for name in where}
    assert printed == []
