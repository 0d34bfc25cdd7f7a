"""The README's commands stay true: cheap ones run here; training/sweep commands have their configs
validated here and run end to end in tests/integration (test_spine, test_sweep, test_modes_train)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.tune.config import load_sweep

REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")


def readme_commands() -> list[list[str]]:
    """``.venv/bin/tuneforge ...`` lines of the README's bash blocks (continuations joined)."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    out = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith(".venv/bin/tuneforge "):
                out.append(shlex.split(line)[1:])
    return out


COMMANDS = readme_commands()


def test_readme_shows_the_main_commands() -> None:
    names = {c[0] for c in COMMANDS}
    assert {"train", "sweep", "data", "modes", "eval", "promote"} <= names


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a)[:60])
def test_readme_command(args: list[str], tmp_path: Path) -> None:
    if args[0] in ("train", "sweep", "submit"):  # run for real in tests/integration; here: config valid
        config, overrides = args[1], [a for a in args[2:] if "=" in a and not a.startswith("-")]
        is_sweep = args[0] == "sweep" or "--sweep" in args
        (load_sweep if is_sweep else load_config)(REPO / config, overrides)
        return
    if args[0] not in ("data", "modes", "version", "plan"):
        pytest.skip(f"`{args[0]}` needs a trained model; exercised in tests/integration")
    args = [str(tmp_path / Path(a).name) if i and args[i - 1] == "--out" else a for i, a in enumerate(args)]
    proc = subprocess.run([TUNEFORGE, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
