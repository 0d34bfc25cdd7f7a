"""Smoke test of the modes-table bench (jobs/bench/modes_table.py) at its smallest settings: two modes,
a few steps, the tiny base only, every ``tuneforge train`` joining the session's Ray head."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

# ~5 min (three short `tuneforge train` runs: pre-training, prompt tuning, LoRA; then scoring): slow tier.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
MODES = ["instruct", "editor"]


def _finite_interval(iv: dict) -> bool:
    values = [iv["mean"], iv["low"], iv["high"]]
    return all(math.isfinite(v) for v in values) and iv["low"] <= iv["mean"] <= iv["high"]


def test_modes_table_smallest(ray_head, tuneforge_home: Path, tmp_path: Path):
    out = tmp_path / "bench"
    cmd = [
        sys.executable, "jobs/bench/modes_table.py", "--modes", ",".join(MODES), "--eval", "5",
        "--pretrain-steps", "2", "--steps", "2", "--methods", "prompt_tuning,lora", "--no-real",
        "--max-new", "12", "--out", str(out),
    ]  # fmt: skip
    # No --lock: the test session already owns the one Ray head (RAY_ADDRESS), the runs join it.
    run = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])

    result = json.loads((out / "modes_table.json").read_text())
    assert set(result["runs"]) == {"tiny-pretrain", "tiny-prompt_tuning", "tiny-lora"}
    assert all(r["steps"] == 2 for k, r in result["runs"].items() if k != "tiny-pretrain")
    table = result["table"]["tiny"]
    assert list(table) == MODES
    for mode, entry in table.items():
        assert entry["n"] == 5
        rows = entry["rows"]
        expected = {"zero_shot", "k_shot", "prompt_tuning", "lora"} | (
            {"copy_input"} if mode == "editor" else set()
        )
        assert set(rows) == expected, (mode, set(rows))
        metric = entry["verdict"]["metric"]
        for name, row in rows.items():
            assert _finite_interval(row["summary"][metric]), (mode, name, row["summary"][metric])
            assert len(row["per_example"][metric]) == 5
        v = entry["verdict"]
        assert v["best"] in ("prompt_tuning", "lora")
        for key in ("vs_zero_shot", "vs_k_shot") + (("vs_copy_input",) if mode == "editor" else ()):
            assert _finite_interval(v[key]), (mode, key, v[key])
        assert isinstance(v["goal"], bool)
    md = (out / "modes_table.md").read_text()
    assert "| instruct | rougeL | 5 |" in md and "| tiny | editor |" in md
