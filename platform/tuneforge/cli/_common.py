"""What every ``tuneforge`` command shares: the error console, ``fail``, and the common options.

The command modules (``cli/*_cmd.py``) and ``cli/main.py`` import this module; it imports nothing
of the CLI's (so no command module needs ``main``, which imports them all to wire the app).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

#: Where every command's one-line errors go (stderr, so ``--json``'s last stdout line stays clean).
console = Console(stderr=True)


def fail(message: str) -> None:
    """Print one clear line and exit 1 (no traceback for input errors)."""
    console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


#: ``--json``: a machine-readable summary as the last stdout line (default False).
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON summary as the last line.")]
#: ``--verbose/-v``: let Ray's and DeepSpeed's own logs through (default False).
VerboseFlag = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ray and DeepSpeed logs.")]
#: ``--tracking-uri``: the MLflow store (default None: ``$MLFLOW_TRACKING_URI``, else the local one).
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the sqlite store in $TUNEFORGE_HOME).",
    ),
]
