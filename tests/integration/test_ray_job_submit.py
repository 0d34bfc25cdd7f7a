"""The real client path: ``ray job submit`` of jobs/finetune.py to a head started with ``ray start``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
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


def _status(head, job_id: str) -> str:
    """The job's status from the dashboard's job REST API (what ``ray job status`` asks), lower-cased.

    Polling through the REST endpoint instead of the CLI: every ``ray job status`` is a new Python
    process importing Ray (~1.5 s of CPU), which on a 2-core machine slows the very job being watched.
    """
    with urllib.request.urlopen(f"{head.dashboard_url}/api/jobs/{job_id}", timeout=10) as r:
        return str(json.loads(r.read())["status"]).lower()


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
        "trainer.max_steps=6",
        "trainer.log_every=2",
        "tracking.run_name=via-ray-job",
        "registry.model_name=via-ray-job",
        "--json",
    )
    job_id = re.search(r"raysubmit_\w+", submit).group(0)

    _wait_job(ray_head, job_id, 420)
    status = _ray(ray_head, "status", job_id).lower()  # the CLI's own words, once
    logs = _ray(ray_head, "logs", job_id)
    assert f"job '{job_id.lower()}' succeeded" in status, f"{status}\n{logs[-3000:]}"
    assert "step 6/6 train_loss" in logs
    summary = json.loads(logs.strip().splitlines()[-1])
    assert summary["registered_model"] == "via-ray-job" and summary["version"] == "1"
    assert summary["eval_loss_after"] < summary["eval_loss_before"]

    client = MlflowClient(f"sqlite:///{tuneforge_home}/mlflow.db")
    run = client.get_run(summary["run_id"])
    assert run.info.run_name == "via-ray-job" and run.info.status == "FINISHED"
    assert client.get_metric_history(summary["run_id"], "train_loss")


def _wait_job(head, job_id: str, timeout: float = 600) -> str:
    deadline, status = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        status = _status(head, job_id)
        if status in ("succeeded", "failed", "stopped"):
            return status
        time.sleep(2)
    return status


@pytest.mark.slow  # ~4 min: two sweep submissions; `make test-all` runs it
def test_ray_job_submit_sweep_is_stopped_and_resumed(ray_head, tuneforge_home: Path):
    """jobs/sweep.py through `ray job submit`; `ray job stop` mid-sweep; `--resume` finishes it and
    does not rerun the trial that had already finished (one MLflow child run for it)."""
    runtime_env = {
        "env_vars": {
            "TUNEFORGE_HOME": str(tuneforge_home),
            "HF_HUB_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DS_ACCELERATOR": "cpu",
            "TORCH_EXTENSIONS_DIR": os.environ["TORCH_EXTENSIONS_DIR"],
            "TUNE_GLOBAL_CHECKPOINT_S": "1",
        }
    }
    args = [
        "--",
        "python",
        "jobs/sweep.py",
        "--config",
        "jobs/configs/sweep/tiny_cpu_mix.yaml",
        "--name",
        "it-resume",
        "search.num_samples=2",
        "search.max_concurrent_trials=1",
        "search.max_total_tokens=null",
        "trainer.max_steps=4",
        "trainer.eval_every=2",
        "--json",
    ]
    env_json = json.dumps(runtime_env)
    first = _ray(ray_head, "submit", "--no-wait", "--working-dir", ".", "--runtime-env-json", env_json, *args)
    job_id = re.search(r"raysubmit_\w+", first).group(0)

    client = MlflowClient(f"sqlite:///{tuneforge_home}/mlflow.db")
    finished: list = []
    deadline = time.monotonic() + 420
    while not finished and time.monotonic() < deadline:
        time.sleep(3)
        exp = client.get_experiment_by_name("tuneforge-sweep")
        if exp is None:
            continue
        parents = client.search_runs([exp.experiment_id], "tags.`tuneforge.sweep` = 'it-resume'")
        if parents:
            children = client.search_runs(
                [exp.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
            )
            finished = [c for c in children if c.info.status == "FINISHED"]
        assert _status(ray_head, job_id) != "failed", _ray(ray_head, "logs", job_id)[-3000:]
    assert finished, "no trial finished in time"
    done_trial = finished[0].data.tags["tuneforge.trial_id"]
    time.sleep(4)  # let Tune write its experiment state (TUNE_GLOBAL_CHECKPOINT_S=1)
    _ray(ray_head, "stop", job_id)
    assert _wait_job(ray_head, job_id, 120) == "stopped"

    second = _ray(
        ray_head,
        "submit",
        "--no-wait",
        "--working-dir",
        ".",
        "--runtime-env-json",
        env_json,
        *args,
        "--resume",
    )
    job2 = re.search(r"raysubmit_\w+", second).group(0)
    status = _wait_job(ray_head, job2)
    logs = _ray(ray_head, "logs", job2)
    assert status == "succeeded", f"{status}\n{logs[-3000:]}"
    summary = json.loads(logs.strip().splitlines()[-1])
    trials = summary["trials"]
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials), trials
    assert all(
        abs(sum(v for k, v in t["params"].items() if k.startswith("data.mix.")) - 1) < 1e-6 for t in trials
    )
    children = client.search_runs(
        [client.get_run(summary["parent_run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{summary['parent_run_id']}'",
    )
    assert [c.data.tags["tuneforge.trial_id"] for c in children].count(done_trial) == 1  # not rerun
    assert {t["trial_id"] for t in trials} <= {c.data.tags["tuneforge.trial_id"] for c in children}
    assert all(c.info.status != "RUNNING" for c in children)
