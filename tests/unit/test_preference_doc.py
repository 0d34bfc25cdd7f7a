"""docs/preference.md stays true: its train/sweep commands load, its eval command's flags exist.

The commands themselves run end to end in tests/integration/test_preference_train.py (train, eval
--preference through the CLI) and tests/integration/test_sweep.py (the preference sweep, slow tier).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.tune.config import load_sweep

REPO = Path(__file__).resolve().parents[1].parent
DOC = REPO / "docs" / "preference.md"


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("tuneforge ")]


COMMANDS = _commands()


def test_the_doc_shows_train_sweep_and_eval() -> None:
    assert {c[0] for c in COMMANDS} >= {"train", "sweep", "eval"}


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a)[:60])
def test_doc_command(args: list[str]) -> None:
    if args[0] in ("train", "sweep"):
        overrides = [a for a in args[2:] if "=" in a and not a.startswith("-")]
        (load_sweep if args[0] == "sweep" else load_config)(REPO / args[1], overrides)
        return
    assert args[0] == "eval"
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "tuneforge"), "eval", "--help"],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    for flag in (a for a in args if a.startswith("--")):
        assert flag in help_text, flag
