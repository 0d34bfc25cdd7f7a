"""``tuneforge sweep``: search over tuning strategies with Ray Tune."""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli._common import JsonFlag, VerboseFlag, console
from tuneforge.cli.errors import user_errors
from tuneforge.frontend import TrainingProgress, print_json_line, sweep_summary


def register_sweep_command(app: typer.Typer) -> None:
    """Attach ``sweep`` to the top-level app."""

    @app.command()
    def sweep(
        config: Path = typer.Argument(..., help="Sweep YAML, e.g. jobs/configs/sweep/tiny_cpu.yaml"),
        overrides: list[str] = typer.Argument(None, help="key=value overrides (job or search.*)"),
        name: str | None = typer.Option(None, "--name", help="Sweep name (default: file stem + time)"),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted sweep of this name"),
        as_json: JsonFlag = False,
        verbose: VerboseFlag = False,
    ) -> None:
        """Run a strategy sweep: every trial a distributed run; ASHA stops bad ones; best -> challenger."""
        with user_errors():
            from tuneforge.tune.config import load_sweep, sweep_name
            from tuneforge.tune.driver import run_sweep  # Ray Tune: only when sweeping

            sweep_id = sweep_name(config, name, resume)
            job, sweep_cfg = load_sweep(config, overrides or [])
            events = TrainingProgress(console)
            summary = run_sweep(job, sweep_cfg, name=sweep_id, resume=resume, verbose=verbose, events=events)
        for line in sweep_summary(summary):
            console.print(line, highlight=False, soft_wrap=True)
        if as_json:
            print_json_line(summary.to_dict())  # after Ray is shut down: nothing prints after it
