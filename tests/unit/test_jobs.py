"""The ``ray job submit`` entry points (jobs/*.py) call the library, never the CLI, and fail in one line."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JOB_SCRIPTS = sorted((REPO / "jobs").rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_entry_points_exist():
    names = {p.name for p in JOB_SCRIPTS}
    assert {"finetune.py", "sweep.py", "demo_real.py"} <= names


@pytest.mark.parametrize("name", ["finetune.py", "sweep.py"])
def test_cluster_entry_points_carry_their_submit_commands(name: str):
    """The two scripts that run on a cluster show both ways to submit them, with the shared runtime env."""
    doc = ast.get_docstring(ast.parse((REPO / "jobs" / name).read_text())) or ""
    assert "tuneforge submit " in doc
    assert "ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml" in doc
    assert f"python jobs/{name} --config jobs/configs/" in doc


@pytest.mark.parametrize("script", JOB_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_job_scripts_do_not_import_the_cli(script: Path):
    cli = sorted(
        m for m in imported_modules(script) if m == "tuneforge.cli" or m.startswith("tuneforge.cli.")
    )
    assert not cli, f"{script.relative_to(REPO)} imports {cli}: jobs call the library, not the CLI"


def run_job_script(script: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        env={**os.environ, "TUNEFORGE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("script", ["jobs/finetune.py", "jobs/sweep.py"])
def test_bad_config_path_is_one_line_and_exit_1(tmp_path: Path, script: str):
    missing = tmp_path / "nope.yaml"
    out = run_job_script(script, "--config", str(missing), "--json", home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [f"error: {missing}: config file not found"], out.stderr
    assert out.stdout == ""


def test_bad_override_names_the_key(tmp_path: Path):
    tiny = "jobs/configs/finetune/tiny_cpu.yaml"
    out = run_job_script("jobs/finetune.py", "--config", tiny, "trainer.lrr=1", home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: <override>: trainer.lrr: unknown key; did you mean 'lr'?"
    ], out.stderr


def test_sweep_resume_needs_a_name(tmp_path: Path):
    sweep = "jobs/configs/sweep/tiny_cpu.yaml"
    out = run_job_script("jobs/sweep.py", "--config", sweep, "--resume", home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --resume needs --name: the name of the sweep to continue"
    ], out.stderr
