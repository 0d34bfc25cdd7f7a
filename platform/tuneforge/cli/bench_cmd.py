"""``tuneforge bench``: the full path against a plain PyTorch loop and the HF Trainer, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tuneforge.cli._common import JsonFlag, console, fail
from tuneforge.cli.errors import user_errors
from tuneforge.frontend import offline_defaults, print_json_line


def register_bench_command(app: typer.Typer) -> None:
    """Attach ``bench`` to the top-level app."""

    @app.command()
    def bench(
        config: Path | None = typer.Option(
            None,
            "--config",
            help="Job YAML whose model and data to benchmark (default: --model's built-in job)",
        ),
        model: str = typer.Option("tiny", "--model", help="Built-in default: tiny (1.3M Llama) or smollm2"),
        steps: int | None = typer.Option(
            None, "--windows", help="Timed windows per path (default per model)"
        ),
        window: int | None = typer.Option(None, "--window", help="Optimizer steps per window"),
        warmup: int | None = typer.Option(None, "--warmup", help="Untimed optimizer steps per path"),
        rows: int | None = typer.Option(None, "--rows", help="Rows per optimizer step (global batch)"),
        seq_len: int | None = typer.Option(None, "--seq-len", help="Row length (tokens)"),
        records: int | None = typer.Option(None, "--records", help="Generated records (built-in data only)"),
        path: list[str] = typer.Option(
            None, "--path", help="Only these paths: plain padded hf full_1 full_n"
        ),
        as_json: JsonFlag = False,
        out: Path | None = typer.Option(None, "--out", help="Also write the JSON report here"),
    ) -> None:
        """Time every training path on the same model, data and batches; MFU against this machine's peak."""
        offline_defaults()
        from dataclasses import replace

        from tuneforge.bench.settings import defaults_for, with_paths

        with user_errors():
            try:
                settings = defaults_for(model)
                overrides = {
                    "windows": steps,
                    "window": window,
                    "warmup": warmup,
                    "rows": rows,
                    "seq_len": seq_len,
                    "records": records,
                }
                settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
                settings = with_paths(settings, path)
            except ValueError as exc:
                fail(str(exc))
            for name in ("windows", "window", "rows", "seq_len", "records"):
                if getattr(settings, name) < 1:
                    fail(f"--{name.replace('_', '-')} must be >= 1")
            if settings.warmup < 0:
                fail("--warmup must be >= 0")
            base = None
            if config is not None:
                from tuneforge.config import load_config

                base = load_config(config)
            from tuneforge.bench import report as rep
            from tuneforge.bench.runner import run_bench
            from tuneforge.frontend import release_ray

            try:
                result = run_bench(settings, base, say=lambda m: console.print(f"[dim]bench:[/dim] {m}"))
            finally:
                release_ray()
        console.print(rep.table(result))
        if any("phase_seconds" in e for e in result["paths"].values()):
            console.print(rep.phase_table(result))
        for line in rep.summary_lines(result):
            console.print(line, highlight=False, soft_wrap=True)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")
        if as_json:
            print_json_line(result)
