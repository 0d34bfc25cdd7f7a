"""Several commands opening one new sqlite MLflow store at once all get a working store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

OPEN = """
import sys
import mlflow
from tuneforge.tracking.store import resolve_tracking_uri
uri = resolve_tracking_uri(sys.argv[1]) if sys.argv[2] == "tuneforge" else sys.argv[1]
mlflow.MlflowClient(uri).search_experiments(max_results=1)
"""


def _open_at_once(uri: str, how: str, n: int) -> list[subprocess.CompletedProcess]:
    env = {"PYTHONPATH": str(REPO / "platform"), "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, uri, how], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), None, p.stderr.read()) for p in procs]


def test_concurrent_first_opens_of_a_new_store_all_succeed(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = _open_at_once(uri, "tuneforge", 4)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-1500:] for r in results]
