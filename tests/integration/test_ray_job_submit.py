"""The real client path: ``ray job submit`` of jobs/finetune.py to a head started with ``ray start``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _ray(head, *args: str, timeout: float = 120) -> str:
    """Run ``ray job ...`` against the head; Ray's CLI writes to both streams, so merge them."""
    out = subprocess.run(
        [
            str(Path(head.env["PATH"].split(os.pathsep)[0]) / "ray"),
            "job",
            args[0],
            "--address",
            head.dashboard_url,
            *args[1:],
        ],
        env=head.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout
    return out.stdout


def test_ray_job_submit_runs_finetune(ray_head, tuneforge_home: Path):
    runtime_env = {
        "env_vars": {
            "TUNEFORGE_HOME": str(tuneforge_home),
            "HF_HUB_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DS_ACCELERATOR": "cpu",
            "TORCH_EXTENSIONS_DIR": os.environ["TORCH_EXTENSIONS_DIR"],
        }
    }
    submit = _ray(
        ray_head,
        "submit",
        "--no-wait",
        "--working-dir",
        ".",
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        "python",
        "jobs/finetune.py",
        "--config",
        "jobs/configs/finetune/tiny_cpu.yaml",
        "trainer.max_steps=10",
        "trainer.log_every=2",
        "tracking.run_name=via-ray-job",
        "registry.model_name=via-ray-job",
        "--json",
    )
    job_id = re.search(r"raysubmit_\w+", submit).group(0)

    deadline, status = time.monotonic() + 420, ""
    while time.monotonic() < deadline:
        status = _ray(ray_head, "status", job_id).lower()
        if any(s in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(2)
    logs = _ray(ray_head, "logs", job_id)
    assert f"job '{job_id.lower()}' succeeded" in status, f"{status}\n{logs[-3000:]}"
    assert "step 10/10 train_loss" in logs
    summary = json.loads(logs.strip().splitlines()[-1])
    assert summary["registered_model"] == "via-ray-job" and summary["version"] == "1"
    assert summary["eval_loss_after"] < summary["eval_loss_before"]

    client = MlflowClient(f"sqlite:///{tuneforge_home}/mlflow.db")
    run = client.get_run(summary["run_id"])
    assert run.info.run_name == "via-ray-job" and run.info.status == "FINISHED"
    assert client.get_metric_history(summary["run_id"], "train_loss")
