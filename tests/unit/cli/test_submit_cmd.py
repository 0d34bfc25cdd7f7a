"""``tuneforge submit`` and ``tuneforge jobs``: bad input is one line and exit 1, before any cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXE = str(Path(sys.executable).parent / "tuneforge")


def _run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNEFORGE_STORAGE"))}
    env.update({"COLUMNS": "300", **(env_extra or {})})
    return subprocess.run([EXE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _one_line_error(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], out.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["submit", "jobs/configs/finetune/nope.yaml", "--storage", "/tmp"], "nope.yaml"),
        (
            ["submit", "jobs/configs/finetune/tiny_cpu.yaml", "trainer.lr=abc", "--storage", "/tmp"],
            "trainer.lr",
        ),
        (["submit", "jobs/configs/finetune/tiny_cpu.yaml"], "no shared storage: pass --storage"),
        (["submit", "jobs/configs/finetune/tiny_cpu.yaml", "--storage", "gs://b"], "object-store URLs"),
        (
            ["submit", "jobs/configs/sweep/tiny_cpu.yaml", "--storage", "/tmp"],
            "jobs/configs/sweep/tiny_cpu.yaml",
        ),
    ],
)
def test_bad_submit_input_is_one_line(args: list[str], needle: str) -> None:
    _one_line_error(_run(*args), needle)


def test_no_cluster_at_the_address_is_one_line_within_seconds() -> None:
    started = time.perf_counter()
    out = _run(
        "submit",
        "jobs/configs/finetune/tiny_cpu.yaml",
        "--storage",
        "/tmp",
        "--address",
        "http://127.0.0.1:9",
    )
    _one_line_error(out, "cannot reach the Ray job API at http://127.0.0.1:9")
    assert time.perf_counter() - started < 60
    _one_line_error(_run("jobs", "list", "--address", "http://127.0.0.1:9"), "cannot reach the Ray job API")
