"""The mode registry: name -> ``Mode``. Built-in modes are listed here; ``register`` adds more.

Modules are imported on first use so that ``import tuneforge.modes`` stays cheap and the metric
registry can consult the modes lazily (evaluation must not import modes at import time).
"""

from __future__ import annotations

import importlib

from tuneforge.modes.base import Mode

#: Built-in modes in the order of the issue's table: name -> module under tuneforge.modes.
BUILTIN: dict[str, str] = {
    "instruct": "instruct",
    "chat": "chat",
    "chat+instruct": "chat_instruct",
    "question": "question",
    "editor": "editor",
    "schedule": "schedule",
    "filter": "filter",
    "reverse-instruction": "reverse_instruction",
    "reverse-chat": "reverse_chat",
    "diff": "diff",
    "domain": "domain",
}

_MODES: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    """Add (or replace) a mode; a user's own module calls this with its ``MODE``."""
    _MODES[mode.name] = mode
    return mode


def all_modes() -> dict[str, Mode]:
    """Every registered mode, built-ins first in table order."""
    for name, module in BUILTIN.items():
        if name not in _MODES:
            register(importlib.import_module(f"tuneforge.modes.{module}").MODE)
    order = list(BUILTIN) + [n for n in _MODES if n not in BUILTIN]
    return {n: _MODES[n] for n in order}


def get_mode(name: str) -> Mode:
    """A mode by name; a module path ``pkg.module`` (with a ``MODE``) is imported and registered."""
    modes = all_modes()
    if name in modes:
        return modes[name]
    if "." in name:
        return register(importlib.import_module(name).MODE)
    raise ValueError(f"unknown mode '{name}'; known: {', '.join(modes)}")
