"""The ``tuneforge`` command line: thin commands over library calls.

Every command turns known bad input (config, data, paths) into one line on stderr and exit code 1;
``--json`` makes the last stdout line a machine-readable summary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from tuneforge import __version__
from tuneforge.cli.errors import console, fail
from tuneforge.cli.progress import promotion_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune LLMs on a Ray cluster: Ray Data -> Ray Train + DeepSpeed -> MLflow.",
)


def _register_subcommands() -> None:
    """Command groups live in their own modules (one job each); main only wires them in."""
    from tuneforge.cli.data_cmd import data_app
    from tuneforge.cli.model_cmd import register_model_commands

    app.add_typer(data_app, name="data", help="Inspect and validate datasets.")
    register_model_commands(app)
    from tuneforge.cli.registry_cmd import register_registry_commands

    register_registry_commands(app, fail)
    from tuneforge.cli.modes_cmd import register_modes_commands

    register_modes_commands(app, fail)
    from tuneforge.cli.sweep_cmd import register_sweep_command

    register_sweep_command(app, fail, console)


def _defaults_env() -> None:
    """Offline, quiet defaults for every command (the user's own settings win)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@app.command()
def version() -> None:
    """Print the tuneforge version."""
    print(__version__)


@app.command()
def train(
    config: Path = typer.Argument(..., help="Job YAML, e.g. jobs/configs/finetune/tiny_cpu.yaml"),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides, e.g. trainer.lr=3e-4"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary as the last line."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Ray and DeepSpeed logs."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Reuse trainer.output_dir even if it holds a different run."
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue a stopped or failed run (its run directory, or one of its checkpoints) "
        "from its newest complete checkpoint, into the same MLflow run.",
    ),
) -> None:
    """Fine-tune a model as the job config says; log, evaluate and register it."""
    _defaults_env()
    from tuneforge.cli.errors import release_ray, user_errors
    from tuneforge.config import load_config

    with user_errors(fail):
        job = load_config(config, overrides or [])
        from tuneforge.cli.progress import TrainingProgress
        from tuneforge.distributed.runner import run_job
        from tuneforge.training.resume import find_run

        target = find_run(resume) if resume is not None else None
        events = TrainingProgress(console, quiet=False)
        summary = run_job(job, events, verbose=verbose, resume=target, overwrite=overwrite)
    _print_summary(summary.to_dict())
    if as_json:
        release_ray()  # Ray's log monitor must not print after the JSON line
        print(json.dumps(summary.to_dict()), flush=True)


def _print_summary(s: dict) -> None:
    fell = "fell" if s["eval_loss_after"] < s["eval_loss_before"] else "did NOT fall"
    reg = f"{s['registered_model']} v{s['version']}" if s["registered_model"] else "(not registered)"
    console.print(
        f"\n[bold green]done[/bold green] in {s['wall_seconds']}s · {s['steps']} steps · "
        f"{s['tokens_per_second']:.0f} tokens/s\n"
        f"  eval loss      {s['eval_loss_before']:.4f} → {s['eval_loss_after']:.4f} ({fell})\n"
        f"  run            {s['run_id']}  ({s['run_dir']})\n"
        f"  checkpoint     {s['checkpoint']}\n"
        f"  registered     {reg}\n"
        f"  promotion      {promotion_line(s.get('promotion'))}\n"
        f"  open the UI    {s['ui_command']}",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    """Console-script entry point."""
    app()


_register_subcommands()


if __name__ == "__main__":
    main()
