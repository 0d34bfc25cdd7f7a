"""Entry point for ``ray job submit``: a strategy sweep from a YAML sweep spec.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/sweep.py --config jobs/configs/sweep/tiny_cpu.yaml --json
"""

from __future__ import annotations

import argparse
import sys

from tuneforge.cli.main import app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="sweep YAML")
    parser.add_argument("--name")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--json", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    cli = ["sweep", args.config, *overrides]
    cli += (["--name", args.name] if args.name else []) + (["--resume"] if args.resume else [])
    cli += ["--json"] if args.json else []
    app(cli, prog_name="jobs/sweep.py")


if __name__ == "__main__":
    main(sys.argv[1:])
