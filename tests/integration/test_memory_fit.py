"""The memory-fit benchmark runs the command docs/performance.md shows ("## Memory planner"), with the
tiny case and one step appended (later options win), and writes a well-formed report.

Memory numbers are never asserted (they depend on the machine); only that each was measured and predicted.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "performance.md"


def _bench_commands() -> list[list[str]]:
    section = DOC.read_text().split("## Memory planner", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("python jobs/bench/memory_fit.py")]


def test_the_documented_memory_fit_command_runs(tmp_path: Path) -> None:
    commands = _bench_commands()
    assert commands, "docs/performance.md shows no memory_fit command"
    for args in commands:
        out = tmp_path / "memory_fit.json"
        cmd = [sys.executable, *args, "--cases", "tiny", "--steps", "1", "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(out.read_text())
        (row,) = report["rows"]
        assert row["case"] == "tiny" and row["measured_peak"] > 0 and row["predicted"]["total"] > 0
        assert row["measured"]["peaks"]["step 1"] > 0
        assert "tiny: predicted" in done.stdout
