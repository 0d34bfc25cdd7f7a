"""The ``tuneforge`` command line: thin commands over library calls.

Every command turns known bad input (config, data, paths) into one line on stderr and exit code 1;
``--json`` makes the last stdout line a machine-readable summary.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge import __version__
from tuneforge.cli._common import JsonFlag, VerboseFlag, console
from tuneforge.cli.bench_cmd import register_bench_command
from tuneforge.cli.data_cmd import data_app
from tuneforge.cli.doctor_cmd import register_doctor_command
from tuneforge.cli.errors import user_errors
from tuneforge.cli.model_cmd import register_model_commands
from tuneforge.cli.modes_cmd import register_modes_commands
from tuneforge.cli.plan_cmd import register_plan_command
from tuneforge.cli.registry_cmd import register_registry_commands
from tuneforge.cli.submit_cmd import register_submit_command
from tuneforge.cli.sweep_cmd import register_sweep_command
from tuneforge.frontend import TrainingProgress, offline_defaults, print_json_line, run_summary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune LLMs on a Ray cluster: Ray Data -> Ray Train + DeepSpeed -> MLflow.",
)


def _register_subcommands() -> None:
    """Command groups live in their own modules (one job each, sharing ``cli/_common.py``); main only
    wires them in, and nothing imports main but the entry point."""
    app.add_typer(data_app, name="data", help="Inspect and validate datasets.")
    register_model_commands(app)
    register_registry_commands(app)
    register_modes_commands(app)
    register_sweep_command(app)
    register_plan_command(app)
    register_bench_command(app)
    register_submit_command(app)
    register_doctor_command(app)


def _defaults_env() -> None:
    """Offline, quiet defaults for every command (the user's own settings win)."""
    offline_defaults()


@app.command()
def version() -> None:
    """Print the tuneforge version."""
    print(__version__)


@app.command()
def train(
    config: Path = typer.Argument(..., help="Job YAML, e.g. jobs/configs/finetune/tiny_cpu.yaml"),
    overrides: list[str] = typer.Argument(None, help="key.sub=value overrides, e.g. trainer.lr=3e-4"),
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
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
    from tuneforge.config import load_config

    with user_errors():
        job = load_config(config, overrides or [])
        from tuneforge.distributed.runner import run_job  # Ray, torch, DeepSpeed: only when training
        from tuneforge.training.resume import find_run

        target = find_run(resume) if resume is not None else None
        events = TrainingProgress(console, quiet=False)
        summary = run_job(job, events, verbose=verbose, resume=target, overwrite=overwrite)
    console.print(run_summary(summary.to_dict()), highlight=False, soft_wrap=True)
    if as_json:
        print_json_line(summary.to_dict())  # after Ray is shut down: nothing prints after it


def main() -> None:
    """Console-script entry point."""
    app()


_register_subcommands()


if __name__ == "__main__":
    main()
