"""The mode table: name -> ``Mode``. Built-in modes are listed here; ``register`` adds more.

Registering a mode also records its metrics in the evaluation's table
(``tuneforge.evaluation.metric_table.set_mode_metrics``), so ``eval --mode`` knows every mode
without evaluation importing the modes. The built-ins are registered when this module is imported
(their modules are small: data structures, prompts and builders).
"""

from __future__ import annotations

import importlib

from tuneforge.evaluation.metric_table import set_mode_metrics
from tuneforge.modes import (
    chat,
    chat_instruct,
    diff,
    domain,
    editor,
    instruct,
    question,
    reverse_chat,
    reverse_instruction,
    schedule,
)
from tuneforge.modes import filter as filter_mode
from tuneforge.modes.base import Mode

_BUILTIN_MODULES = (
    instruct,
    chat,
    chat_instruct,
    question,
    editor,
    schedule,
    filter_mode,
    reverse_instruction,
    reverse_chat,
    diff,
    domain,
)
#: Built-in modes in the order of the issue's table: name -> module under tuneforge.modes.
BUILTIN: dict[str, str] = {m.MODE.name: m.__name__.rsplit(".", 1)[1] for m in _BUILTIN_MODULES}

_MODES: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    """Add (or replace) a mode; a user's own module calls this with its ``MODE``."""
    _MODES[mode.name] = mode
    set_mode_metrics(mode.name, mode.metrics)
    return mode


def all_modes() -> dict[str, Mode]:
    """Every mode in the table, built-ins first in table order."""
    order = list(BUILTIN) + [n for n in _MODES if n not in BUILTIN]
    return {n: _MODES[n] for n in order if n in _MODES}


def get_mode(name: str) -> Mode:
    """A mode by name; a module path ``pkg.module`` (with a ``MODE``) is imported and registered."""
    modes = all_modes()
    if name in modes:
        return modes[name]
    if "." in name:
        return register(importlib.import_module(name).MODE)
    raise ValueError(f"unknown mode '{name}'; known: {', '.join(modes)}")


for _module in _BUILTIN_MODULES:
    register(_module.MODE)
