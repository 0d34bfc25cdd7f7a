"""``tuneforge data ...``: dataset inspection commands (validate, preview)."""

from __future__ import annotations

import typer

data_app = typer.Typer(no_args_is_help=True, add_completion=False)
