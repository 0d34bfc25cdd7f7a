"""Training throughput: tuneforge's engine + loop against a plain PyTorch loop, in one run.

    python jobs/bench/throughput.py --out bench.json          # defaults: the demo's tiny model and shapes

Measures tokens/s of
  1. a plain single-process PyTorch loop (``tuneforge.testing.reference_train``: AdamW, clipping,
     LR schedule, one forward/backward per global batch), and
  2. tuneforge's ``setup_engine`` + ``run_loop`` (DeepSpeed ZeRO-0 and ZeRO-2 by default) with 1 and 2
     ranks spawned on this machine (gloo on loopback, no Ray),
on the same global batches (each rank gets its share of every global batch), and writes a JSON with the
ratios platform / plain. Every rank gets an equal share of the cores (1 rank: all of them), as Ray Train
does; the plain loop uses all cores. Tokens/s is what the loop itself reports (tokens over time spent in
training steps, evaluation and checkpointing excluded); the plain loop is timed the same way. Each process
first runs ``--warmup`` untimed steps (a fresh process's first steps pay one-off allocation and kernel
set-up costs that would otherwise dominate short runs). Timings are this machine's: compare ratios, not
absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "platform"))  # runnable from a checkout without the editable install
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".tuneforge" / "torch_extensions"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402 - the environment above must be set before torch/deepspeed load

from tuneforge.config import JobConfig, config_from_dict  # noqa: E402
from tuneforge.models.factory import build_tiny_model  # noqa: E402
from tuneforge.testing import (  # noqa: E402
    NullTokenizer,
    RecordingReporter,
    reference_train,
    shard_batches,
    spawn,
    synthetic_batches,
)


def make_job(args: argparse.Namespace, zero_stage: int, world: int) -> JobConfig:
    """The job spec both loops follow: the demo's tiny model, constant LR, clipping, no evaluation."""
    return config_from_dict(
        {
            "data": {"train_files": ["synthetic.jsonl"]},
            "model": {
                "tiny": {
                    "vocab_size": args.vocab_size,
                    "hidden_size": args.hidden_size,
                    "intermediate_size": 2 * args.hidden_size,
                    "num_hidden_layers": args.layers,
                    "num_attention_heads": 4,
                    "max_position_embeddings": max(512, args.seq_len),
                }
            },
            "trainer": {
                "max_steps": args.steps,
                "lr": 1e-3,
                "lr_scheduler": "constant",
                "micro_batch_size": args.batch // world,
                "max_seq_len": args.seq_len,
                "log_every": max(args.steps, 1),
                "seed": 0,
            },
            "distributed": {"num_workers": world, "zero_stage": zero_stage},
            "registry": {"model_name": None},
        }
    )


def data(args: argparse.Namespace) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    train = synthetic_batches(args.steps, args.batch, args.seq_len, args.vocab_size, seed=1)
    evals = synthetic_batches(1, args.batch, args.seq_len, args.vocab_size, seed=2)
    return train, evals


def platform_once(rank: int, world: int, args: argparse.Namespace, stage: int, steps: int) -> dict[str, Any]:
    """One ``setup_engine`` + ``run_loop`` run of ``steps`` steps at ZeRO ``stage`` on this rank."""
    from tuneforge.training.engine import setup_engine
    from tuneforge.training.loop import run_loop
    from tuneforge.training.objectives import objective_for

    train, evals = data(args)
    job = make_job(args, stage, world)
    model = build_tiny_model(job.model.tiny, args.vocab_size, seed=0)
    engine = setup_engine(model, job.trainer, job.distributed, world, steps, torch.float32)
    mbs = job.trainer.micro_batch_size
    result = run_loop(
        engine,
        NullTokenizer(),
        job.trainer,
        zero_stage=job.distributed.zero_stage,
        objective=objective_for(job.method),
        rank=rank,
        world=world,
        total_steps=steps,
        train_batches=lambda epoch, skip: shard_batches(train, rank, world, mbs),
        eval_batches=lambda: shard_batches(evals, rank, world, mbs),
        reporter=RecordingReporter(),
        device=torch.device("cpu"),
        config_hash="bench",
    )
    engine.destroy()
    return {
        "zero_stage": stage,
        "world_size": world,
        "threads_per_rank": torch.get_num_threads(),
        "steps": result.steps,
        "tokens": result.train_tokens,
        "tokens_per_second": result.tokens_per_second,
    }


def platform_rank(rank: int, world: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """On each spawned rank: an untimed warm-up run, then every ZeRO stage in turn."""
    if args.warmup:
        platform_once(rank, world, args, args.stages[0], args.warmup)
    return [platform_once(rank, world, args, stage, args.steps) for stage in args.stages]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; return the JSON-ready report."""
    import deepspeed
    import transformers

    load_before = os.getloadavg()[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    train, _ = data(args)
    job = make_job(args, 0, 1)
    if args.warmup:
        warm = build_tiny_model(job.model.tiny, args.vocab_size, seed=0)
        reference_train(warm, train, job.trainer, args.warmup)
    model = build_tiny_model(job.model.tiny, args.vocab_size, seed=0)
    losses, seconds, tokens = reference_train(model, train, job.trainer, args.steps)
    plain = {
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds,
        "final_loss": losses[-1],
    }
    # The same loop on one thread: the per-core yardstick for ranks that get one core each, and a hint
    # of how well intra-op threading scales on this machine (poorly when other work holds the cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, seconds_1, tokens_1 = reference_train(
            build_tiny_model(job.model.tiny, args.vocab_size, seed=0), train, job.trainer, args.steps
        )
    finally:
        torch.set_num_threads(threads)
    plain_1_thread = {"threads": 1, "tokens_per_second": tokens_1 / seconds_1}
    runs: list[dict[str, Any]] = []
    for world in args.worlds:
        started = time.perf_counter()
        # Rank 0's view; the loop sums tokens over ranks.
        results = spawn(platform_rank, world, args, threads=args.threads)[0]
        for r in results:
            r["ratio_vs_plain"] = r["tokens_per_second"] / plain["tokens_per_second"]
            r["ratio_vs_plain_1_thread"] = r["tokens_per_second"] / plain_1_thread["tokens_per_second"]
            r["spawn_seconds_all_stages"] = round(time.perf_counter() - started, 1)
        runs.extend(results)
    params = sum(p.numel() for p in model.parameters())
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "deepspeed": deepspeed.__version__,
            "transformers": transformers.__version__,
            # Other work on the machine skews every number: the 1-minute load around the run says how much.
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "settings": {
            "steps": args.steps,
            "warmup_steps": args.warmup,
            "global_batch": args.batch,
            "seq_len": args.seq_len,
            "tokens_per_step": args.batch * args.seq_len,
            "model_parameters": params,
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "vocab_size": args.vocab_size,
        },
        "plain": plain,
        "plain_1_thread": plain_1_thread,
        "platform": runs,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per process before measuring")
    p.add_argument("--batch", type=int, default=16, help="global batch (rows); split evenly over ranks")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2], help="ranks per platform run")
    p.add_argument("--stages", type=int, nargs="+", default=[0, 2], help="ZeRO stages per platform run")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for the plain loop and every rank (default: plain all cores, ranks a share)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    args = p.parse_args(argv)
    for w in args.worlds:
        if args.batch % w:
            p.error(f"--batch {args.batch} must split evenly over {w} ranks")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    plain = report["plain"]["tokens_per_second"]
    print(f"plain PyTorch, {report['plain']['threads']} threads: {plain:,.0f} tokens/s")
    print(f"plain PyTorch, 1 thread: {report['plain_1_thread']['tokens_per_second']:,.0f} tokens/s")
    for r in report["platform"]:
        print(
            f"tuneforge ZeRO-{r['zero_stage']}, {r['world_size']} rank(s) x {r['threads_per_rank']} threads: "
            f"{r['tokens_per_second']:,.0f} tokens/s  ({r['ratio_vs_plain']:.2f} x plain)"
        )
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
