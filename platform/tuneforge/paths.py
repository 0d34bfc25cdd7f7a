"""Where tuneforge keeps its files on this machine: the workspace directory ``$TUNEFORGE_HOME``.

Every layer needs it (the tracking store, the data and model caches, sweep and run directories,
promotion locks), so it lives in a leaf module that imports nothing of tuneforge's and nothing
heavy: importing it never pulls in MLflow, Ray or torch.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "TUNEFORGE_HOME"


def tuneforge_home() -> Path:
    """``$TUNEFORGE_HOME`` or ``<cwd>/.tuneforge``, absolute and created.

    Absolute so that a sqlite URI built from it stays valid in Ray workers, whose cwd differs.
    """
    env = os.environ.get(HOME_ENV)
    home = Path(env).expanduser() if env else Path.cwd() / ".tuneforge"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


__all__ = ["HOME_ENV", "tuneforge_home"]
