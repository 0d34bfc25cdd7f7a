"""Compute saved by ASHA: the same seeded search run with ASHA and run to completion (FIFO).

Both sweeps sample the same strategies (random searcher, same seed), on the same Ray instance, one
after the other; the script prints a markdown table for docs/sweeps.md: trial-iterations (reports =
evaluations) used, wall-clock, and the best strategy each found.

    .venv/bin/python jobs/bench/sweep_asha_vs_fifo.py [--config jobs/configs/sweep/tiny_cpu.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(config: str, name: str, scheduler: str, extra: list[str]) -> tuple[dict, float]:
    """One sweep through the CLI; returns its --json summary and wall seconds."""
    cmd = [str(Path(sys.executable).parent / "tuneforge"), "sweep", config, "--name", name, "--json"]
    cmd += [f"search.scheduler={scheduler}", "registry.model_name=null", *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def strategy(trial: dict) -> str:
    p = trial["params"]
    knobs = ", ".join(f"{k.split('.', 1)[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
                      for k, v in sorted(p.items()) if k != "method.name")  # fmt: skip
    return f"{p['method.name']} ({knobs})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="jobs/configs/sweep/tiny_cpu.yaml")
    args, extra = parser.parse_known_args()
    stamp = time.strftime("%H%M%S")
    rows = []
    for scheduler in ("asha", "fifo"):
        summary, wall = run(args.config, f"bench-{scheduler}-{stamp}", scheduler, extra)
        trials = summary["trials"]
        rows.append((scheduler, summary, wall, sum(t["iterations"] for t in trials)))
    full = rows[1][3]
    print("| scheduler | trials | trial-iterations | saved | wall-clock | best strategy | best eval_loss |")
    print("|---|---|---|---|---|---|---|")
    for scheduler, summary, wall, iters in rows:
        best = summary["best"]
        stopped = sum(t["status"] == "early-stopped" for t in summary["trials"])
        print(
            f"| {scheduler} | {len(summary['trials'])} ({stopped} stopped early) | {iters} | "
            f"{1 - iters / full:.0%} | {wall:.0f} s | {strategy(best)} | {best['metric']:.4f} |"
        )
    same = strategy(rows[0][1]["best"]) == strategy(rows[1][1]["best"])
    print(f"\nsame best strategy: {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
