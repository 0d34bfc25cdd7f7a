"""``tuneforge export`` / ``tuneforge generate``: commands that work on trained models.

Thin wrappers over ``tuneforge.models.export`` and ``tuneforge.models.generation``. A model argument
may be a full HF directory (base, full or freeze checkpoint), a PEFT adapter directory (any method),
a run directory (its newest checkpoint), or an MLflow run id (its run directory under
``$TUNEFORGE_HOME/runs`` or its ``trainer.output_dir``). Bad input: one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import typer

from tuneforge.cli._common import JsonFlag, fail
from tuneforge.cli.errors import user_errors

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _quiet_transformers() -> None:
    """Loading bars and hub warnings would bury the one line of output."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def resolve_source(arg: str) -> Path:
    """A path as given; a 32-hex MLflow run id -> that run's directory (then its newest checkpoint)."""
    path = Path(arg)
    if path.exists() or not _RUN_ID.match(arg):
        return path
    from tuneforge.paths import tuneforge_home
    from tuneforge.tracking import TrackingClient, resolve_tracking_uri

    run = TrackingClient(resolve_tracking_uri(None)).find_run(arg)
    if run is None:
        raise FileNotFoundError(f"{arg}: not a directory, and no MLflow run with this id")
    output_dir = run.params.get("trainer.output_dir")
    run_dir = (
        Path(output_dir) if output_dir and output_dir != "None" else tuneforge_home() / "runs" / str(run.name)
    )
    if not run_dir.exists():
        raise FileNotFoundError(f"run {arg}: its run directory {run_dir} does not exist here")
    return run_dir


def generate_cmd(
    model: str = typer.Argument(..., help="Model or adapter directory, run directory, or MLflow run id."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="Prompt text; repeat for a batch."),
    style: str = typer.Option(
        "chat", "--prompt-style", help="chat | instruct (a user turn, trained template) | raw."
    ),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="Tokens to generate."),
    as_json: JsonFlag = False,
) -> None:
    """Generate greedy completions with a base, full, freeze or adapter (any method) model."""
    from tuneforge.models.generation import PROMPT_STYLES  # torch, transformers: only when a command runs

    if style not in PROMPT_STYLES:
        fail(f"--prompt-style: unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")
    _quiet_transformers()
    with user_errors():
        from tuneforge.data.trained_format import find_format
        from tuneforge.models.export import find_checkpoint
        from tuneforge.models.generation import generate, load_for_inference

        path = find_checkpoint(resolve_source(model))
        loaded, tokenizer = load_for_inference(path)
        fmt = find_format(path)  # the template it was trained with; unrecorded: the tokenizer's own
        template = fmt.template if fmt else "auto"
        completions = generate(loaded, tokenizer, prompt, max_new_tokens, style, template)
    for p, c in zip(prompt, completions, strict=True):
        print(c if len(prompt) == 1 else f"[{p}] {c}", flush=True)
    if as_json:
        rows = [{"prompt": p, "completion": c} for p, c in zip(prompt, completions, strict=True)]
        print(json.dumps({"model": str(path), "prompt_style": style, "completions": rows}), flush=True)


def export_cmd(
    source: str = typer.Argument(..., help="Checkpoint directory, run directory, or MLflow run id."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write (must be new or empty)."),
    merge: bool = typer.Option(False, "--merge", help="Fold a LoRA/IA3 adapter into its base model."),
    as_json: JsonFlag = False,
) -> None:
    """Write a standalone model: merged HF weights (LoRA/IA3), or a copy with an absolute base path."""
    _quiet_transformers()
    with user_errors():
        from tuneforge.models.export import ExportError, export_model

        try:
            result = export_model(resolve_source(source), out, merge)
        except ExportError as e:
            fail(str(e))
            return
    print(f"exported {result.kind} model to {result.out}", flush=True)
    if as_json:
        print(json.dumps(result.to_dict()), flush=True)


def register_model_commands(app: typer.Typer) -> None:
    """Attach the model commands to the top-level app."""
    app.command("generate")(generate_cmd)
    app.command("export")(export_cmd)
