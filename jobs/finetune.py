"""Entry point for ``ray job submit``: one fine-tuning run from a YAML job spec.

    tuneforge submit jobs/configs/finetune/tiny_cpu.yaml trainer.max_steps=20 --wait

or, with Ray's own CLI (from the repository root; the runtime env ships the library):

    ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/finetune.py --config jobs/configs/finetune/tiny_cpu.yaml trainer.max_steps=20 --json

It connects to the cluster it was submitted to (plain ``ray.init()``, never a hard-coded address)
and does what ``tuneforge train`` does, through the same library calls (no CLI in between): other
arguments are ``key.sub=value`` overrides; ``--resume RUN_DIR`` continues a stopped run.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from tuneforge.errors import exit_with, user_errors
from tuneforge.frontend import TrainingProgress, offline_defaults, print_json_line, run_summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="job YAML")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--verbose", action="store_true", help="show Ray and DeepSpeed logs")
    parser.add_argument("--overwrite", action="store_true", help="reuse a trainer.output_dir of another run")
    parser.add_argument("--resume", help="continue a stopped run (its run dir or one of its checkpoints)")
    args, overrides = parser.parse_known_args(argv)
    offline_defaults()
    console = Console(stderr=True)
    with user_errors(exit_with):
        from tuneforge.config import load_config

        job = load_config(args.config, overrides)  # a bad config fails before Ray and torch load
        from tuneforge.distributed.runner import run_job
        from tuneforge.training.resume import find_run

        target = find_run(args.resume) if args.resume else None
        events = TrainingProgress(console)
        summary = run_job(job, events, verbose=args.verbose, resume=target, overwrite=args.overwrite)
    console.print(run_summary(summary.to_dict()), highlight=False, soft_wrap=True)
    if args.json:
        print_json_line(summary.to_dict())


if __name__ == "__main__":
    main(sys.argv[1:])
