"""The modes package as a whole: importing it (and its heavier modules) never imports Ray."""

from __future__ import annotations

import subprocess
import sys


def test_modes_import_without_ray() -> None:
    code = (
        "import sys, tuneforge.modes, tuneforge.modes.baselines, tuneforge.modes.selfinstruct, "
        "tuneforge.modes.materialize\n"
        "tuneforge.modes.all_modes()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
