"""``tuneforge modes list`` and ``tuneforge selfinstruct``: the tuning modes and self-instruct bootstrapping.

``tuneforge data build`` (in ``data_cmd``) compiles data for a mode; ``tuneforge eval --mode`` scores it.
"""

from __future__ import annotations

import json
import os

import typer

from tuneforge.cli._common import JsonFlag
from tuneforge.cli.errors import user_errors

modes_app = typer.Typer(no_args_is_help=True, add_completion=False)


@modes_app.command("list")
def list_modes(
    as_json: JsonFlag = False,
) -> None:
    """The tuning modes: what each learns, its input structure and its metric."""
    from tuneforge.modes import all_modes

    modes = all_modes()
    width = max(len(n) for n in modes)
    for mode in modes.values():
        typer.echo(f"{mode.name:{width}s}  {mode.learns}")
        typer.echo(
            f"{'':{width}s}  inputs: {', '.join(mode.inputs)} · metric: {mode.metric} · from: {mode.sources}"
        )
    if as_json:
        print(
            json.dumps(
                {"modes": [{"name": m.name, "inputs": m.inputs, "metric": m.metric} for m in modes.values()]}
            )
        )


def register_modes_commands(app: typer.Typer) -> None:
    """Attach the ``modes`` group and ``selfinstruct`` to the top-level app."""
    app.add_typer(modes_app, name="modes", help="Tuning modes: list them (build data with `data build`).")

    @app.command()
    def selfinstruct(
        model: str = typer.Option(
            ..., "--model", help="Generating causal LM (path, run id, runs:/, models:/)."
        ),
        seed_tasks: str = typer.Option(
            ..., "--seed-tasks", help="Seed tasks (self-instruct JSONL or Alpaca)."
        ),
        out: str = typer.Option(..., "--out", help="Accepted pairs, Alpaca JSONL."),
        n: int = typer.Option(..., "--n", min=1, help="Pairs to generate."),
        k: int = typer.Option(3, "--k", min=1, help="Tasks shown in each prompt."),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
        max_attempts: int | None = typer.Option(None, "--max-attempts", help="Default: 4 x n."),
        seed: int = typer.Option(0, "--seed"),
        as_json: JsonFlag = False,
    ) -> None:
        """Bootstrap instruction/response pairs from seed tasks; report what each filter dropped."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        with user_errors():
            from tuneforge.modes.selfinstruct import load_seed_tasks, self_instruct, write_alpaca
            from tuneforge.registry.resolve import load_model_ref

            seeds = load_seed_tasks(seed_tasks)
            if not seeds:
                raise ValueError(f"--seed-tasks {seed_tasks}: no usable seed tasks")
            m, tok = load_model_ref(model)
            res = self_instruct(
                m, tok, seeds, n, k=k, max_new_tokens=max_new_tokens, max_attempts=max_attempts, seed=seed
            )
            write_alpaca(res.accepted, out)
        counts = {
            key: res.counts.get(key, 0)
            for key in ("attempted", "accepted", "unparseable", "empty", "too_long", "near_duplicate")
        }
        typer.echo(f"{len(seeds)} seed tasks -> {counts['accepted']} new pairs in {out}", err=True)
        typer.echo("  " + " · ".join(f"{key} {v}" for key, v in counts.items()), err=True)
        if as_json:
            print(json.dumps({"out": out, "seed_tasks": len(seeds), "counts": counts}))
