"""Entry point for ``ray job submit``: one fine-tuning run from a YAML job spec.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/finetune.py --config jobs/configs/finetune/tiny_cpu.yaml trainer.max_steps=20 --json

It connects to the cluster it was submitted to (plain ``ray.init()``, never a hard-coded address)
and does exactly what ``tuneforge train`` does.
"""

from __future__ import annotations

import argparse
import sys

from tuneforge.cli.main import app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="job YAML")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--verbose", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    cli_args = (
        ["train", args.config, *overrides]
        + (["--json"] if args.json else [])
        + (["--verbose"] if args.verbose else [])
    )
    app(cli_args, prog_name="jobs/finetune.py")


if __name__ == "__main__":
    main(sys.argv[1:])
