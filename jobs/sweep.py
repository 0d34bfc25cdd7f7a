"""Entry point for ``ray job submit``: a strategy sweep from a YAML sweep spec.

    tuneforge submit --sweep jobs/configs/sweep/tiny_cpu.yaml --name N [--resume] --wait

or, with Ray's own CLI (from the repository root; the runtime env ships the library):

    ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/sweep.py --config jobs/configs/sweep/tiny_cpu.yaml --name N [--resume] --json

It does what ``tuneforge sweep`` does, through the same library calls (no CLI in between): other
arguments are ``key=value`` overrides (job keys or ``search.*``); a stopped sweep job resubmitted
with ``--resume`` keeps its finished trials.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from tuneforge.errors import exit_with, user_errors
from tuneforge.frontend import TrainingProgress, offline_defaults, print_json_line, sweep_summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="sweep YAML")
    parser.add_argument("--name", help="sweep name (default: the file's stem plus the time)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this name")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--verbose", action="store_true", help="show Ray and DeepSpeed logs")
    args, overrides = parser.parse_known_args(argv)
    offline_defaults()
    console = Console(stderr=True)
    with user_errors(exit_with):
        from tuneforge.tune.config import load_sweep, sweep_name

        name = sweep_name(args.config, args.name, args.resume)
        job, sweep = load_sweep(args.config, overrides)  # a bad config fails before Ray Tune loads
        from tuneforge.tune.driver import run_sweep

        events = TrainingProgress(console)
        summary = run_sweep(job, sweep, name=name, resume=args.resume, verbose=args.verbose, events=events)
    for line in sweep_summary(summary):
        console.print(line, highlight=False, soft_wrap=True)
    if args.json:
        print_json_line(summary.to_dict())


if __name__ == "__main__":
    main(sys.argv[1:])
