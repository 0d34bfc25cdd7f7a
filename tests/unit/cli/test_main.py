"""The CLI turns bad input into one line naming file, line and field, and exit code 1 — no traceback.

These run the real ``tuneforge`` entry point; bad input is caught before Ray or DeepSpeed start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TINY = "jobs/configs/finetune/tiny_cpu.yaml"
EXE = str(Path(sys.executable).parent / "tuneforge")


def _run(*args: str, cwd: Path = REPO, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEFORGE_HOME": str(home or cwd / ".tf-test-home"), "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_version():
    out = _run("version")
    assert out.returncode == 0 and out.stdout.strip() == "0.1.0"


def test_config_typo_names_file_line_and_suggestion(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text((REPO / TINY).read_text().replace("  max_steps: 60", "  max_step: 60"))
    out = _run("train", str(cfg), home=tmp_path)
    assert out.returncode == 1
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if "max_step:" in text)
    assert f"job.yaml:{line}: trainer.max_step: unknown key; did you mean 'max_steps'?" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_override_typo(tmp_path):
    out = _run("train", TINY, "distributed.zero_stag=3", home=tmp_path)
    assert out.returncode == 1
    assert "distributed.zero_stag" in out.stderr and "zero_stage" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_record_names_file_line_field(tmp_path):
    good = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    )
    bad = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "asistant", "content": "yo"}]})
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join([good, good, bad]) + "\n")
    out = _run("train", TINY, f"data.train_files=[{data}]", home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"{data}:3: messages[1].role: unknown role 'asistant'" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_data_file(tmp_path):
    out = _run("train", TINY, f"data.train_files=[{tmp_path / 'nope.jsonl'}]", home=tmp_path)
    assert out.returncode == 1
    assert "nope.jsonl" in out.stderr and "Traceback" not in out.stderr


def test_missing_config_file(tmp_path):
    out = _run("train", str(tmp_path / "missing.yaml"), home=tmp_path)
    assert out.returncode == 1 and "missing.yaml" in out.stderr and "Traceback" not in out.stderr


def test_finetune_job_script_refuses_an_override_typo_with_a_suggestion(tmp_path):
    out = subprocess.run(
        [sys.executable, "jobs/finetune.py", "--config", TINY, "trainer.lrr=1"],
        cwd=REPO,
        env={**os.environ, "TUNEFORGE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "trainer.lrr" in out.stderr and "'lr'" in out.stderr
