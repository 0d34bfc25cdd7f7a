"""Submitting a tuneforge run or sweep to a Ray cluster through its job API, and judging the result.

Why this exists rather than a bare ``ray job submit``:

- **The library travels with the job.** ``--working-dir .`` alone does not put ``platform/`` on the
  path, so every node needed its own install of the exact revision. The runtime environment here
  (``jobs/runtime_env.yaml``, which ``ray job submit --runtime-env`` reads too) ships the package as a
  ``py_modules`` entry, which Ray puts ahead of any installed copy on the driver and every worker.
- **Results land on shared storage, not in Ray's per-job copy of the working dir.** The job's
  ``TUNEFORGE_HOME`` (caches, run dirs, checkpoints, the default sqlite store) is the storage path the
  submitter names, and ``MLFLOW_TRACKING_URI`` is passed explicitly.
- **"SUCCEEDED" is not enough.** Ray only knows the entrypoint exited 0. Other tools' cluster paths have
  exited 0 with nothing trained; a tuneforge entrypoint prints its JSON summary as its last log line,
  and a job counts as done only when that summary shows optimizer steps (a run) or a trial that
  reported (a sweep).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The development runtime environment (repository-relative paths), shared with ``ray job submit``.
RUNTIME_ENV_FILE = "jobs/runtime_env.yaml"
#: The dashboard (job API) address when none is given: the local cluster's default port.
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: Where ``cluster/local/start.sh`` (and users) name the shared storage every node can read and write.
STORAGE_ENV = "TUNEFORGE_STORAGE"
ENTRYPOINTS = {"train": "jobs/finetune.py", "sweep": "jobs/sweep.py"}
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
AUTH_HINT = (
    "the cluster uses token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH to the "
    "cluster's token file (a local cluster: `source .tuneforge/cluster/cluster.env`; a remote one: run "
    "`ray get-auth-token` on its head and keep the output in a file only you can read)"
)


@dataclass(frozen=True)
class Submission:
    """What goes to the job API: the shell entrypoint and its runtime environment."""

    kind: str  # "train" or "sweep"
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Whether a finished job did its work, in one line, with the summary it printed (if any)."""

    ok: bool
    reason: str
    summary: dict[str, Any] | None = None


def job_address(address: str | None = None) -> str:
    """``--address`` > ``$RAY_API_SERVER_ADDRESS`` > an ``http(s)://`` ``$RAY_ADDRESS`` > the local default.

    The same precedence as Ray's own ``ray job`` CLI, so one exported variable serves both.
    """
    if address:
        return address
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(var, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def shared_storage(storage: str | None) -> str:
    """The storage path jobs write to: ``--storage`` or ``$TUNEFORGE_STORAGE``, absolute.

    Refused when absent (results would land in a per-job temporary copy and vanish with it) and for
    object-store URLs, which tuneforge's caches and run dirs cannot use directly yet.
    """
    value = storage or os.environ.get(STORAGE_ENV)
    if not value:
        raise ValueError(
            "no shared storage: pass --storage PATH (a directory every node can read and write) or set "
            f"{STORAGE_ENV}; for the local cluster, `source .tuneforge/cluster/cluster.env` sets it"
        )
    if "://" in value:
        raise ValueError(
            f"--storage {value}: object-store URLs are not supported yet; mount the bucket on every node "
            "(e.g. s3fs, gcsfuse) and pass the mount path"
        )
    return str(Path(value).expanduser().resolve())


def load_runtime_env(root: Path) -> dict[str, Any]:
    """``jobs/runtime_env.yaml`` with its repository-relative paths made absolute under ``root``."""
    path = root / RUNTIME_ENV_FILE
    env = yaml.safe_load(path.read_text())
    if not isinstance(env, dict):
        raise ValueError(f"{path}: expected a mapping (a Ray runtime_env)")
    env = dict(env)
    if "working_dir" in env:
        env["working_dir"] = str((root / env["working_dir"]).resolve())
    env["py_modules"] = [str((root / m).resolve()) for m in env.get("py_modules", [])]
    env["env_vars"] = {k: str(v) for k, v in (env.get("env_vars") or {}).items()}
    return env


def build_submission(
    config: Path,
    overrides: list[str],
    *,
    root: Path,
    storage: str,
    sweep: bool = False,
    tracking_uri: str | None = None,
    name: str | None = None,
    resume: bool = False,
    entrypoint: str | None = None,
) -> Submission:
    """The entrypoint (``jobs/finetune.py`` or ``jobs/sweep.py`` with ``--json``) and runtime env.

    ``config`` must lie inside ``root``: the working dir is what reaches the cluster, so a file outside
    it would not exist there. ``entrypoint`` replaces the script (a job of the user's own that prints
    the same JSON summary last).
    """
    root = root.resolve()
    try:
        rel = config.resolve().relative_to(root)
    except ValueError:
        raise ValueError(
            f"{config}: outside the working dir {root}, so the cluster would not see it; "
            "move it under the repository"
        ) from None
    kind = "sweep" if sweep else "train"
    script = entrypoint or ENTRYPOINTS[kind]
    args = ["python", script, "--config", str(rel), *overrides, "--json"]
    if sweep and name:
        args += ["--name", name]
    if resume:
        if not sweep:
            raise ValueError("--resume with submit applies to sweeps (--sweep --name NAME --resume)")
        args.append("--resume")
    env = load_runtime_env(root)
    env_vars = dict(env["env_vars"])
    env_vars["TUNEFORGE_HOME"] = storage
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        env_vars["MLFLOW_TRACKING_URI"] = uri
    env["env_vars"] = env_vars
    meta = {"tuneforge.kind": kind, "tuneforge.config": str(rel)}
    return Submission(kind, shlex.join(args), env, meta)


def client(address: str) -> Any:
    """A ``JobSubmissionClient``; an authentication failure becomes one line saying how to get the token."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001 - Ray raises plain RuntimeError/ConnectionError here
        raise ValueError(_connection_message(address, e)) from None


def _connection_message(address: str, e: Exception) -> str:
    text = str(e)
    if "401" in text or "403" in text or "uthenticat" in text:
        return f"{address}: {AUTH_HINT}"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return (
        f"cannot reach the Ray job API at {address} ({first}); start a cluster "
        "(cluster/local/start.sh) or pass --address http://HEAD:8265"
    )


def submit(job_client: Any, submission: Submission) -> str:
    """Submit and return the job id."""
    return str(
        job_client.submit_job(
            entrypoint=submission.entrypoint,
            runtime_env=submission.runtime_env,
            metadata=submission.metadata,
        )
    )


def wait(
    job_client: Any,
    job_id: str,
    *,
    on_logs: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
) -> str:
    """Poll until the job ends (``SUCCEEDED``/``FAILED``/``STOPPED``); stream new log text to ``on_logs``.

    Polling rather than ``tail_job_logs``: it needs no event loop, and a job API that goes away ends
    the wait with an error instead of a hang.
    """
    seen = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(job_client.get_job_status(job_id).value)
        if on_logs is not None:
            logs = job_client.get_job_logs(job_id)
            if len(logs) > seen:
                on_logs(logs[seen:])
                seen = len(logs)
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:g} s")
        time.sleep(poll_s)


def last_summary(logs: str) -> dict[str, Any] | None:
    """The JSON object on the last line of the logs that parses as one (the entrypoint's ``--json``)."""
    for line in reversed(logs.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            return value if isinstance(value, dict) else None
    return None


def verdict(kind: str, status: str, logs: str, message: str | None = None) -> Verdict:
    """Whether the job trained: Ray's status first, then the summary the entrypoint printed."""
    summary = last_summary(logs)
    if status != "SUCCEEDED":
        why = f": {message.strip().splitlines()[-1]}" if message and message.strip() else ""
        return Verdict(False, f"the job {status.lower()}{why}", summary)
    if summary is None:
        return Verdict(False, "the job exited 0 but printed no run summary: nothing was trained", None)
    if kind == "sweep":
        trials = summary.get("trials") or []
        trained = [t for t in trials if int(t.get("iterations") or 0) > 0]
        if not trained:
            return Verdict(
                False, f"the sweep exited 0 but none of its {len(trials)} trials reported", summary
            )
        return Verdict(True, f"{len(trained)} of {len(trials)} trials trained", summary)
    steps = int(summary.get("steps") or 0)
    if steps <= 0 or int(summary.get("train_tokens") or 0) <= 0:
        return Verdict(False, "the job exited 0 but trained zero steps", summary)
    return Verdict(True, f"trained {steps} steps", summary)


__all__ = [
    "DEFAULT_ADDRESS",
    "RUNTIME_ENV_FILE",
    "STORAGE_ENV",
    "TERMINAL",
    "Submission",
    "Verdict",
    "build_submission",
    "client",
    "job_address",
    "last_summary",
    "load_runtime_env",
    "shared_storage",
    "submit",
    "verdict",
    "wait",
]
