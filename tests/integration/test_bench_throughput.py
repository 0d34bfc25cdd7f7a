"""The throughput benchmark runs end to end with tiny settings and writes a well-formed report.

Timings are never asserted (they depend on the machine and its load); only that every measurement
exists, is positive, and that the ratios are what they claim to be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_throughput_benchmark_writes_ratios(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(REPO / "jobs" / "bench" / "throughput.py"),
        *("--steps", "2", "--warmup", "1", "--batch", "2", "--seq-len", "16", "--hidden-size", "32"),
        *("--worlds", "2", "--stages", "0", "2", "--out", str(out)),  # one spawn: ~20 s of start-up each
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "settings", "plain", "plain_1_thread", "platform"}
    assert report["plain_1_thread"]["tokens_per_second"] > 0
    plain = report["plain"]["tokens_per_second"]
    assert plain > 0 and report["plain"]["tokens"] == 2 * 2 * 16
    runs = {(r["zero_stage"], r["world_size"]): r for r in report["platform"]}
    assert set(runs) == {(0, 2), (2, 2)}
    for r in runs.values():
        assert r["steps"] == 2 and r["tokens"] == report["plain"]["tokens"]  # same data, all ranks counted
        assert r["tokens_per_second"] > 0
        assert abs(r["ratio_vs_plain"] - r["tokens_per_second"] / plain) < 1e-9
    assert "ZeRO-2, 2 rank(s)" in done.stdout
