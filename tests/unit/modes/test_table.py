"""The mode table: the built-in modes in order, and the "adding a mode" example of docs/modes.md runs as
written (one module, then the commands know it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.modes import BUILTIN, all_modes, get_mode

REPO = Path(__file__).resolve().parents[3]
EXE = str(Path(sys.executable).parent / "tuneforge")


def test_the_mode_table_has_the_eleven_modes_in_order() -> None:
    assert list(all_modes()) == [
        "instruct", "chat", "chat+instruct", "question", "editor", "schedule", "filter",
        "reverse-instruction", "reverse-chat", "diff", "domain",
    ]  # fmt: skip
    assert list(BUILTIN) == list(all_modes())
    for mode in all_modes().values():
        assert mode.inputs and mode.metric and mode.metrics
    with pytest.raises(ValueError, match="unknown mode 'nope'; known: instruct"):
        get_mode("nope")


def example_module() -> str:
    doc = (REPO / "docs" / "modes.md").read_text()
    section = doc.split("## Adding a mode", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_docs_example_mode_builds_and_evaluates_by_name(tmp_path: Path) -> None:
    pkg = tmp_path / "mymodes"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "title.py").write_text(example_module())
    (tmp_path / "articles.jsonl").write_text(
        json.dumps({"text": "Cats sleep a lot.", "title": "Cats"}) + "\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [EXE, "data", "build", "mymodes.title", "--from", "articles.jsonl", "--out", "t.jsonl", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "t.jsonl").read_text())
    assert row["messages"][1:] == [{"role": "user", "content": "Cats sleep a lot."},
                                   {"role": "assistant", "content": "Cats"}]  # fmt: skip
    code = (
        "from tuneforge.evaluation.metrics import metrics_for_mode; print(metrics_for_mode('mymodes.title'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "('eval_loss', 'rougeL')"
