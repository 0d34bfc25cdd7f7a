"""``tuneforge bench`` runs every path end to end and prints its JSON report with every key.

The commands are the ones docs/performance.md shows, run with tiny sizes appended (later options win),
so the documented commands cannot drift from the CLI. Timings are never asserted: only that every path
produced a rate, that the naive-padding path wastes more than the packed ones, that the single-process
paths trained the same tokens, and that the planner's key (``tokens_per_s``) is the full path's rate.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "performance.md"
TINY = [
    "--records",
    "200",
    "--rows",
    "4",
    "--seq-len",
    "128",
    "--warmup",
    "1",
    "--window",
    "1",
    "--windows",
    "2",
]
KEYS = {"tokens_per_s", "machine", "settings", "model", "peak", "paths", "tokenization", "targets"}
PATH_KEYS = {
    "tokens_per_s",
    "ratio_to_plain",
    "padding_share",
    "peak_rss_bytes",
    "mfu_vs_float32",
    "mfu_vs_bfloat16",
}


def doc_commands() -> list[list[str]]:
    """The ``tuneforge bench`` lines of the "## Benchmark" section of docs/performance.md."""
    text = DOC.read_text()
    section = text.split("## Benchmark", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r"^(tuneforge bench[^\n#]*)", section, flags=re.M)
    return [shlex.split(line) for line in lines]


def run_bench(cmd: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "bench.json"
    args = [str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "tuneforge"), *cmd[1:], *TINY]
    if "--out" in args:  # the doc's report file -> this test's
        at = args.index("--out")
        args = args[:at] + args[at + 2 :]
    args += ["--out", str(out)]
    done = subprocess.run(args, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last == json.loads(out.read_text())
    return last


def check_report(report: dict) -> None:
    assert KEYS <= set(report)
    paths = report["paths"]
    assert set(paths) == {"plain", "padded", "hf", "full_1", "full_n"}
    for name, entry in paths.items():
        assert PATH_KEYS <= set(entry), name
        assert entry["tokens_per_s"] > 0, name
    assert report["tokens_per_s"] == paths["full_1"]["tokens_per_s"]
    assert paths["padded"]["padding_share"] > paths["plain"]["padding_share"]
    assert paths["plain"]["trained_tokens"] == paths["hf"]["trained_tokens"]  # the same batches
    for name in ("full_1", "full_n"):
        phases = paths[name]["phase_seconds"]
        assert phases["to first step"] is not None and phases["to first step"] <= phases["to end"]
    assert paths["full_n"]["workers"] >= 2 and paths["full_n"]["zero_stage"] == 2
    assert report["peak"]["peak_bfloat16"] > 0 and report["model"]["flops_per_token"] > 0
    assert report["tokenization"]["ray_data"]["tokens"] == report["tokenization"]["single_process"]["tokens"]


def test_docs_show_both_defaults() -> None:
    cmds = doc_commands()
    assert cmds and all(c[:2] == ["tuneforge", "bench"] for c in cmds)
    assert any("smollm2" in c for c in cmds) and any("smollm2" not in c for c in cmds)


@pytest.mark.integration
def test_bench_tiny_runs_every_path(ray_head, tuneforge_home, tmp_path: Path) -> None:
    cmd = next(c for c in doc_commands() if "smollm2" not in c)
    check_report(run_bench(cmd, tmp_path))


@pytest.mark.slow
@pytest.mark.integration
def test_bench_smollm2_runs_the_reference_and_the_full_path(ray_head, tuneforge_home, tmp_path: Path) -> None:
    """The documented SmolLM2 command, on two paths (every path runs in the tiny test above; here what
    is the real model's own: its shape, its MFU row, the full path against the plain loop on it)."""
    cmd = next(c for c in doc_commands() if "smollm2" in c)
    report = run_bench([*cmd, "--path", "plain", "--path", "full_1"], tmp_path)
    assert KEYS <= set(report) and set(report["paths"]) == {"plain", "full_1"}
    for entry in report["paths"].values():
        assert PATH_KEYS <= set(entry) and entry["tokens_per_s"] > 0
    assert report["tokens_per_s"] == report["paths"]["full_1"]["tokens_per_s"]
    assert report["model"]["params"] > 100_000_000
    smol = [t for t in report["targets"] if t["target"].startswith("SmolLM2")]
    assert len(smol) == 1 and smol[0]["value"] == report["paths"]["full_1"]["mfu_vs_bfloat16"] > 0
