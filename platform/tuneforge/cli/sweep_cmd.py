"""``tuneforge sweep``: search over tuning strategies with Ray Tune."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from tuneforge.cli.errors import release_ray, user_errors


def register_sweep_command(app: typer.Typer, fail, console) -> None:
    """Attach ``sweep`` to the top-level app."""

    @app.command()
    def sweep(
        config: Path = typer.Argument(..., help="Sweep YAML, e.g. jobs/configs/sweep/tiny_cpu.yaml"),
        overrides: list[str] = typer.Argument(None, help="key=value overrides (job or search.*)"),
        name: str | None = typer.Option(None, "--name", help="Sweep name (default: file stem + time)"),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted sweep of this name"),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON summary as the last line."),
        verbose: bool = typer.Option(False, "--verbose", "-v"),
    ) -> None:
        """Run a strategy sweep: every trial a distributed run; ASHA stops bad ones; best -> challenger."""
        from tuneforge.cli.progress import TrainingProgress

        with user_errors(fail):
            from tuneforge.tune.config import load_sweep
            from tuneforge.tune.driver import run_sweep

            if resume and not name:
                raise ValueError("--resume needs --name: the name of the sweep to continue")
            job, sweep_cfg = load_sweep(config, overrides or [])
            summary = run_sweep(
                job,
                sweep_cfg,
                name=name or f"{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}",
                resume=resume,
                verbose=verbose,
                events=TrainingProgress(console),
            )
        if summary.table:
            console.print(summary.table, highlight=False, soft_wrap=True)
        for t in summary.trials:
            console.print(
                f"  trial {t['trial_id']}  {t['method']:<14} {t['status']:<14} "
                f"iterations {t['iterations']}  metric {t['metric']}",
                highlight=False,
            )
        if summary.best:
            console.print(
                f"best: trial {summary.best['trial_id']} ({summary.best['method']}) "
                f"metric {summary.best['metric']:.4f}",
                highlight=False,
            )
        if summary.version:
            console.print(
                f"registered {summary.registered_model} v{summary.version} as 'challenger'", highlight=False
            )
        if summary.promotion is not None:
            from tuneforge.cli.progress import promotion_line

            console.print(f"promotion: {promotion_line(summary.promotion)}", highlight=False)
        console.print(f"sweep dir: {summary.sweep_dir}  plot: {summary.pareto_plot}", highlight=False)
        if as_json:
            release_ray()  # Ray's log monitor must not print after the JSON line
            print(json.dumps(summary.to_dict(), default=str))
