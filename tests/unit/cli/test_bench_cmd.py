"""``tuneforge bench`` refuses bad options with one line and exit code 1, before measuring anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "tuneforge")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt5"], "--model: expected one of tiny, smollm2"),
        (["--path", "fastest"], "--path: unknown"),
        (["--windows", "0"], "--windows must be >= 1"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
        (["--config", "no/such.yaml"], "no/such.yaml"),
    ],
)
def test_bad_options_fail_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([EXE, "bench", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert message in out and "Traceback" not in out


def test_help_lists_the_options() -> None:
    done = subprocess.run([EXE, "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert all(flag in done.stdout for flag in ("--config", "--model", "--json", "--out"))
