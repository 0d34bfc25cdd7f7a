"""``tuneforge doctor``: check a Ray cluster for what breaks multi-node runs, before a GPU is reserved.

Every check prints pass/fail, what it saw and the fix; the exit code is 1 when any check fails (and
for bad input or no reachable cluster, as one line). The checks are ``distributed/doctor.py``'s.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli._common import JsonFlag, TrackingUri, console, fail
from tuneforge.cli.errors import user_errors
from tuneforge.frontend import offline_defaults, print_json_line, release_ray


def _table(checks: list) -> Table:
    table = Table(show_lines=False, title="tuneforge doctor")
    for column in ("check", "node", "result", "detail / fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        result = "[green]pass[/green]" if c.ok else "[bold red]FAIL[/bold red]"
        detail = c.detail + (f"\n[yellow]fix:[/yellow] {c.fix}" if c.fix else "")
        table.add_row(c.name, c.node, result, detail)
    return table


def register_doctor_command(app: typer.Typer) -> None:
    """Attach ``doctor`` to the top-level app."""

    @app.command()
    def doctor(
        overrides: list[str] = typer.Argument(None, help="key.sub=value overrides of --config"),
        address: str | None = typer.Option(
            None, "--address", help="The cluster's GCS address HOST:PORT (default: $RAY_ADDRESS)."
        ),
        config: Path | None = typer.Option(None, "--config", help="Job YAML to check the cluster against."),
        storage: str | None = typer.Option(
            None,
            "--storage",
            help="Shared storage every node must read and write (default: $TUNEFORGE_STORAGE, "
            "else $TUNEFORGE_HOME).",
        ),
        tracking_uri: TrackingUri = None,
        timeout: float = typer.Option(90.0, "--timeout", help="Seconds each node has to answer.", min=1),
        as_json: JsonFlag = False,
    ) -> None:
        """Check versions, GPUs, resources, shared storage, MLflow, DeepSpeed ops and memory on every node."""
        offline_defaults()
        with user_errors():
            job = None
            if config is not None:
                from tuneforge.config import load_config

                job = load_config(config, overrides or [])
            elif overrides:
                raise ValueError("overrides need --config JOB.yaml")
            from tuneforge.distributed.doctor_run import (
                cluster_address,
                connect,
                diagnose,
                storage_dir,
                tracking_uri_for,
            )

            where = cluster_address(address)
            path = storage_dir(storage)
            uri = tracking_uri_for(job, tracking_uri)
            connect(where)
        try:
            nodes, checks = diagnose(job, path, uri, timeout)
        finally:
            release_ray()
        Console(soft_wrap=False).print(_table(checks))
        failed = [c for c in checks if not c.ok]
        summary = f"{len(nodes)} node(s) at {where}: {len(checks) - len(failed)} passed, {len(failed)} failed"
        if as_json:
            print_json_line({"ok": not failed, "nodes": len(nodes), "checks": [c.to_dict() for c in checks]})
        if failed:
            fail(f"{summary} ({', '.join(sorted({c.name for c in failed}))})")
        console.print(f"[green]ok[/green] {summary}", highlight=False)


__all__ = ["register_doctor_command"]
