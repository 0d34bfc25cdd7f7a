"""What ``tuneforge submit`` sends and how it judges a finished job, without a cluster."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tuneforge.distributed.submit import (
    DEFAULT_ADDRESS,
    build_submission,
    job_address,
    last_summary,
    shared_storage,
    verdict,
)

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / "jobs/configs/finetune/tiny_cpu.yaml"


def test_address_precedence_is_ray_job_clis(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    assert job_address(None) == DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a GCS address is not the job API
    assert job_address(None) == DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert job_address(None) == "http://head:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://api:8265")
    assert job_address(None) == "http://api:8265"
    assert job_address("http://flag:1") == "http://flag:1"


def test_storage_is_required_and_must_be_a_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUNEFORGE_STORAGE", raising=False)
    with pytest.raises(ValueError, match="no shared storage: pass --storage"):
        shared_storage(None)
    with pytest.raises(ValueError, match="object-store URLs are not supported yet"):
        shared_storage("s3://bucket/x")
    monkeypatch.setenv("TUNEFORGE_STORAGE", str(tmp_path))
    assert shared_storage(None) == str(tmp_path.resolve())
    assert shared_storage(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")


def test_submission_ships_the_library_and_points_at_storage_and_tracking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    sub = build_submission(TINY, ["trainer.max_steps=3"], root=REPO, storage="/mnt/shared")
    args = shlex.split(sub.entrypoint)
    assert args == [
        "python", "jobs/finetune.py", "--config", "jobs/configs/finetune/tiny_cpu.yaml",
        "trainer.max_steps=3", "--json",
    ]  # fmt: skip
    env = sub.runtime_env
    assert env["working_dir"] == str(REPO) and env["py_modules"] == [str(REPO / "platform/tuneforge")]
    assert env["env_vars"]["TUNEFORGE_HOME"] == "/mnt/shared"
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert sub.metadata == {
        "tuneforge.kind": "train",
        "tuneforge.config": "jobs/configs/finetune/tiny_cpu.yaml",
    }

    sweep = build_submission(
        REPO / "jobs/configs/sweep/tiny_cpu.yaml", [], root=REPO, storage="/s", sweep=True, name="n",
        resume=True, tracking_uri="http://other:1",
    )  # fmt: skip
    assert shlex.split(sweep.entrypoint)[:2] == ["python", "jobs/sweep.py"]
    assert shlex.split(sweep.entrypoint)[-3:] == ["--name", "n", "--resume"]
    assert sweep.runtime_env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://other:1"


def test_a_config_outside_the_working_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "job.yaml"
    outside.write_text(TINY.read_text())
    with pytest.raises(ValueError, match="outside the working dir"):
        build_submission(outside, [], root=REPO, storage="/s")
    with pytest.raises(ValueError, match="--resume with submit applies to sweeps"):
        build_submission(TINY, [], root=REPO, storage="/s", resume=True)


RUN = {"steps": 4, "train_tokens": 4096, "run_id": "r"}


@pytest.mark.parametrize(
    ("kind", "status", "logs", "ok", "reason"),
    [
        ("train", "SUCCEEDED", "step 4/4\n" + json.dumps(RUN) + "\n", True, "trained 4 steps"),
        ("train", "SUCCEEDED", "all done\n", False, "printed no run summary: nothing was trained"),
        ("train", "SUCCEEDED", json.dumps({**RUN, "steps": 0}), False, "trained zero steps"),
        ("train", "SUCCEEDED", json.dumps({**RUN, "train_tokens": 0}), False, "trained zero steps"),
        ("train", "FAILED", json.dumps(RUN), False, "the job failed: RuntimeError: boom"),
        ("train", "STOPPED", "", False, "the job stopped"),
        (
            "sweep",
            "SUCCEEDED",
            json.dumps({"trials": [{"iterations": 0}, {"iterations": 2}]}),
            True,
            "1 of 2",
        ),
        ("sweep", "SUCCEEDED", json.dumps({"trials": [{"iterations": 0}]}), False, "none of its 1 trials"),
    ],
)
def test_verdict(kind: str, status: str, logs: str, ok: bool, reason: str) -> None:
    v = verdict(kind, status, logs, "Traceback...\nRuntimeError: boom" if status == "FAILED" else None)
    assert v.ok is ok and reason in v.reason, v


def test_last_summary_skips_noise_after_the_json_line() -> None:
    logs = '{"steps": 1}\n{"steps": 2, "train_tokens": 9}\n(raylet) warning {not json}\n\n'
    assert last_summary(logs) == {"steps": 2, "train_tokens": 9}
    assert last_summary("no json here") is None
