"""``tuneforge plan``: predicted peak memory per worker for every ZeRO/offload choice, before any run.

Nothing is reserved or loaded: the model's shape comes from its config (a GGUF file's header), the
bytes from ``models.memory``, the decision from ``models.memory_plan``, the worker's memory from
``distributed.preflight.worker_memory`` (or ``--gpu-memory``). Run time and cost follow from a
throughput: ``--bench`` (the JSON ``tuneforge bench --json`` writes: its ``tokens_per_s``) or
``--tokens-per-s``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli._common import JsonFlag, fail
from tuneforge.cli.errors import user_errors
from tuneforge.frontend import offline_defaults, print_json_line

GiB = 1024**3


def _gib(n: int) -> str:
    return f"{n / GiB:.2f}"


def bench_tokens_per_s(path: Path) -> float:
    """``tokens_per_s`` of a ``tuneforge bench --json`` file (one line naming the file if absent)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--bench {path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--bench {path}: not JSON ({e.msg}, line {e.lineno})") from None
    rate = data.get("tokens_per_s") if isinstance(data, dict) else None
    if not isinstance(rate, int | float) or rate <= 0:
        raise ValueError(
            f"--bench {path}: no positive 'tokens_per_s' (write it with `tuneforge bench --json`)"
        )
    return float(rate)


def throughput(job: Any, tokens_per_s: float | None, price_per_hour: float | None) -> dict[str, Any]:
    """Tokens of the run (max_steps x global batch x max_seq_len), and its time and cost at that rate."""
    t, d = job.trainer, job.distributed
    global_batch = t.micro_batch_size * t.grad_accum * d.num_workers
    tokens = t.max_steps * global_batch * t.max_seq_len if t.max_steps else None
    hours = tokens / tokens_per_s / 3600 if tokens and tokens_per_s else None
    cost = hours * price_per_hour if hours is not None and price_per_hour is not None else None
    return {"tokens": tokens, "tokens_per_s": tokens_per_s, "hours": hours, "cost": cost}


def _table(rows: list[Any], recommended: Any, configured: Any) -> Table:
    table = Table(title="predicted peak memory per worker (GiB)")
    for col in ("choice", "micro-batch", "model states", "offloaded", "activations", "act. ckpt",
                "heap kept", "runtime", "total", "total ckpt", "fits", "fits ckpt"):  # fmt: skip
        table.add_column(col, justify="left" if col == "choice" else "right")
    for c in rows:
        mark = " (recommended)" if c is recommended else " (configured)" if c is configured else ""
        table.add_row(
            c.label() + mark, str(c.micro_batch_size), _gib(c.model_states), _gib(c.offloaded),
            _gib(c.activations), _gib(c.activations_checkpointed), _gib(c.retained), _gib(c.runtime),
            _gib(c.total),
            _gib(c.total_checkpointed), "yes" if c.fits else "no", "yes" if c.fits_checkpointed else "no",
        )  # fmt: skip
    return table


def register_plan_command(app: typer.Typer) -> None:
    """Attach ``plan`` to the top-level app."""

    @app.command()
    def plan(
        config: Path = typer.Argument(..., help="Job YAML, e.g. jobs/configs/finetune/tiny_cpu.yaml"),
        overrides: list[str] = typer.Argument(
            None, help="key.sub=value overrides, e.g. trainer.max_seq_len=512"
        ),
        gpus: int | None = typer.Option(None, "--gpus", min=1, help="Plan for N GPU workers (sets use_gpu)."),
        gpu_memory: float | None = typer.Option(
            None, "--gpu-memory", min=0.1, help="Memory of one GPU in GiB (default: the visible device's)."
        ),
        bench: Path | None = typer.Option(
            None, "--bench", help="`tuneforge bench --json` output: its tokens_per_s."
        ),
        tokens_per_s: float | None = typer.Option(
            None, "--tokens-per-s", min=0.0, help="Assumed throughput."
        ),
        price_per_hour: float | None = typer.Option(
            None, "--price-per-hour", min=0.0, help="Cost of the workers per hour."
        ),
        as_json: JsonFlag = False,
    ) -> None:
        """Predict peak memory per worker under each ZeRO stage and offload; recommend one; estimate cost."""
        offline_defaults()
        with user_errors():
            from tuneforge.config import load_config
            from tuneforge.distributed.preflight import converted_base, worker_memory
            from tuneforge.models.memory_plan import plan as make_plan
            from tuneforge.models.memory_plan import problem, requested
            from tuneforge.models.model_shape import job_shape

            job = load_config(config, overrides or [])
            if gpus is not None:
                dist = job.distributed.model_copy(update={"use_gpu": True, "num_workers": gpus})
                job = job.model_copy(update={"distributed": dist})
            rate = bench_tokens_per_s(bench) if bench is not None else tokens_per_s
            available = worker_memory(job, int(gpu_memory * GiB) if gpu_memory else None)
            shape, trainable = job_shape(job, converted_base(job))  # a converted GGUF: its config.json
            p = make_plan(job, shape, trainable, job.distributed.num_workers, available)
            chosen = requested(job, p)
            why = problem(job, p)
        out = Console(soft_wrap=True)
        out.print(
            f"{config}: {shape.total_params:,} parameters, {trainable:,} trainable ({job.method.name}); "
            f"{job.distributed.num_workers} {'GPU' if job.distributed.use_gpu else 'CPU'} worker(s) with "
            f"{_gib(available)} GiB each; micro-batch x {job.trainer.max_seq_len} tokens",
            highlight=False,
        )
        out.print(_table(p.choices, p.recommended, chosen))
        rec = p.recommended
        out.print(
            f"recommended: {rec.label()}, micro_batch_size {rec.micro_batch_size} ({_gib(rec.total)} GiB)"
            if rec
            else "recommended: nothing fits (see the checkpointed columns)",
            highlight=False,
        )
        run = throughput(job, rate, price_per_hour)
        if run["hours"] is not None:
            cost = f", cost {run['cost']:.2f}" if run["cost"] is not None else ""
            out.print(
                f"run: {run['tokens']:,} tokens at {rate:,.0f} tokens/s = {run['hours']:.2f} h{cost}",
                highlight=False,
            )
        if as_json:
            print_json_line(
                {
                    "total_params": shape.total_params,
                    "trainable_params": trainable,
                    "world_size": job.distributed.num_workers,
                    "available_per_worker": available,
                    "choices": [c.to_dict() for c in p.choices],
                    "recommended": rec.to_dict() if rec else None,
                    "configured": chosen.to_dict() if chosen else None,
                    "fits": why is None,
                    "run": run,
                }
            )
        if why:
            fail(why)
