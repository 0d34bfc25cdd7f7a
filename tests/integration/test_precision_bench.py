"""The precision benchmark runs the command docs/performance.md shows ("## bf16 on CPU"), on the tiny
model with a few steps appended (later options win), and reports each set-up against fp32.

Speed is never asserted (it depends on the machine and its load): only that every set-up ran the same
steps, that fp32 is its own baseline, and that bf16-mixed tracks fp32's losses.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "performance.md"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _commands() -> list[list[str]]:
    section = DOC.read_text().split("## bf16 on CPU", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("python jobs/bench/precision.py")]


def test_the_documented_precision_command_runs(tmp_path: Path) -> None:
    commands = _commands()
    assert commands, "docs/performance.md shows no precision command"
    for args in commands:
        out = tmp_path / "precision.json"
        tiny = ["--model", "tiny", "--steps", "3", "--warmup", "1", "--rounds", "1", "--rows", "2"]
        cmd = [sys.executable, *args, *tiny, "--seq-len", "64", "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(out.read_text())
        setups = report["setups"]
        assert set(setups) == {"float32", "bf16-mixed", "bfloat16"}
        assert setups["float32"]["speedup_vs_fp32"] == 1.0
        assert setups["float32"]["max_rel_loss_diff_vs_fp32"] == 0.0
        assert all(len(s["losses"]) == 3 and s["median_step_s"] > 0 for s in setups.values())
        assert setups["bf16-mixed"]["max_rel_loss_diff_vs_fp32"] < 0.05
