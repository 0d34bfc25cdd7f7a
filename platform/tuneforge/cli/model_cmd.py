"""``tuneforge export`` / ``tuneforge generate``: commands that work on trained models."""

from __future__ import annotations

import typer


def register_model_commands(app: typer.Typer) -> None:
    """Attach the model commands to the top-level app."""
    del app
