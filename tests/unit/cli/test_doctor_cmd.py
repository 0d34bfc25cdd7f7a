"""``tuneforge doctor``: bad input and an unreachable cluster are one line and exit 1, quickly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneforge.testing import free_port

REPO = Path(__file__).resolve().parents[3]
EXE = str(Path(sys.executable).parent / "tuneforge")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNEFORGE_STORAGE"))}
    env["COLUMNS"] = "300"
    return subprocess.run(
        [EXE, "doctor", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def _one_line_error(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], out.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "jobs/configs/finetune/nope.yaml", "--address", "127.0.0.1:1"], "nope.yaml"),
        (
            ["--config", "jobs/configs/finetune/tiny_cpu.yaml", "distributed.placement_strategy=NEAR"],
            "placement_strategy",
        ),
        (["distributed.num_workers=2"], "overrides need --config"),
        ([], "no cluster address: pass --address"),
        (["--address", "http://127.0.0.1:8265"], "give the GCS address HOST:PORT"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str) -> None:
    _one_line_error(_run(*args), needle)


def test_no_cluster_at_the_address_is_one_line_within_seconds() -> None:
    port = free_port()  # free a moment ago: nothing listens there
    start = time.monotonic()
    out = _run("--address", f"127.0.0.1:{port}", "--config", "jobs/configs/finetune/tiny_cpu.yaml")
    _one_line_error(out, f"no Ray cluster answers at 127.0.0.1:{port}")
    assert time.monotonic() - start < 30
