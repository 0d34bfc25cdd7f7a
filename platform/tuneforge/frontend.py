"""What every front end (the ``tuneforge`` CLI, the ``jobs/*.py`` scripts) shows of a run or a sweep.

* ``TrainingProgress``: the ``RunEvents`` of a terminal. Rank 0 logs every ``log_every`` steps to the
  tracking store; the driver polls that store, so the progress shows the real step and loss without any
  extra channel from the workers. On a TTY it is a rich progress bar; otherwise (``ray job logs``, CI)
  it prints one plain line per logged step (``step 6/6 train_loss 2.3456``).
* ``run_summary`` / ``sweep_summary``: the lines printed when a run / a sweep is done.
* ``print_json_line``: ``--json``'s machine-readable summary, after Ray is shut down so it stays last.
* ``offline_defaults``: the quiet, offline environment every command starts from.

Nothing here imports Ray, MLflow or torch at import time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def offline_defaults() -> None:
    """Offline, quiet defaults for a command (the user's own settings win); call before the library."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class TrainingProgress:
    """``RunEvents`` implementation that reports phases and polls MLflow for step metrics."""

    def __init__(self, console: Console, quiet: bool = False, interval_s: float = 1.0) -> None:
        self.console, self.quiet, self.interval_s = console, quiet, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def phase(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]•[/dim] {message}", highlight=False)

    def training_started(self, tracking_uri: str, run_id: str, total_steps: int) -> None:
        if self.quiet:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll, args=(tracking_uri, run_id, total_steps), daemon=True
        )
        self._thread.start()

    def training_finished(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _poll(self, uri: str, run_id: str, total: int) -> None:
        from tuneforge.tracking import TrackingClient

        client = TrackingClient(uri)
        seen: set[tuple[str, int]] = set()
        tty = self.console.is_terminal
        bar = (
            Progress(
                TextColumn("  training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            if tty
            else None
        )
        task = bar.add_task("", total=total) if bar else None
        if bar:
            bar.start()
        try:
            while True:
                stopping = self._stop.wait(self.interval_s)
                for key in ("train_loss", "eval_loss"):
                    try:
                        history = client.metric_history(run_id, key)
                    except Exception:  # the store may be briefly locked; try again next tick
                        continue
                    for m in history:
                        if (key, m.step) in seen:
                            continue
                        seen.add((key, m.step))
                        line = f"step {m.step}/{total} {key} {m.value:.4f}"
                        if bar is not None and task is not None:  # task is None only without a bar
                            bar.update(task, completed=m.step, description=f"{key} {m.value:.4f}")
                        else:
                            print(line, file=sys.stdout, flush=True)
                if stopping:
                    return
        finally:
            if bar:
                bar.stop()


def promotion_line(d: dict | None) -> str:
    """One line on the gate's decision (or why there was none)."""
    if d is None:
        return "not run (registry.promote is false)"
    metric = d["metric"]
    cand = f"{metric} {d['candidate']['mean']:.4f}"
    if d["champion_version"] is None:
        return f"v{d['candidate_version']} is the first champion ({cand})"
    champ = f"champion v{d['champion_version']} {d['champion']['mean']:.4f}"
    if d["promoted"]:
        return f"v{d['candidate_version']} PROMOTED to champion ({cand} vs {champ})"
    reasons = "; ".join(d["reasons"])
    return f"v{d['candidate_version']} rejected, kept as challenger ({cand} vs {champ}): {reasons}"


def run_summary(s: dict[str, Any]) -> str:
    """The lines (rich markup) printed after a run, from ``RunSummary.to_dict()``."""
    fell = "fell" if s["eval_loss_after"] < s["eval_loss_before"] else "did NOT fall"
    reg = f"{s['registered_model']} v{s['version']}" if s["registered_model"] else "(not registered)"
    return (
        f"\n[bold green]done[/bold green] in {s['wall_seconds']}s · {s['steps']} steps · "
        f"{s['tokens_per_second']:.0f} tokens/s\n"
        f"  eval loss      {s['eval_loss_before']:.4f} → {s['eval_loss_after']:.4f} ({fell})\n"
        f"  run            {s['run_id']}  ({s['run_dir']})\n"
        f"  checkpoint     {s['checkpoint']}\n"
        f"  registered     {reg}\n"
        f"  promotion      {promotion_line(s.get('promotion'))}\n"
        f"  open the UI    {s['ui_command']}"
    )


def sweep_summary(summary: Any) -> list[str]:
    """The lines printed after a sweep, from a ``tuneforge.tune.driver.SweepSummary``."""
    lines = [summary.table] if summary.table else []
    lines += [
        f"  trial {t['trial_id']}  {t['method']:<14} {t['status']:<14} "
        f"iterations {t['iterations']}  metric {t['metric']}"
        for t in summary.trials
    ]
    if summary.best:
        best = summary.best
        lines.append(f"best: trial {best['trial_id']} ({best['method']}) metric {best['metric']:.4f}")
    if summary.version:
        lines.append(f"registered {summary.registered_model} v{summary.version} as 'challenger'")
    if summary.promotion is not None:
        lines.append(f"promotion: {promotion_line(summary.promotion)}")
    lines.append(f"sweep dir: {summary.sweep_dir}  plot: {summary.pareto_plot}")
    return lines


def release_ray() -> None:
    """Shut Ray down (if this process started or joined it) so no log line follows our output."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def print_json_line(data: dict[str, Any]) -> None:
    """Print ``data`` as the last stdout line (``--json``): Ray's log monitor must not print after it."""
    release_ray()
    print(json.dumps(data, default=str), flush=True)


__all__ = [
    "TrainingProgress",
    "offline_defaults",
    "print_json_line",
    "promotion_line",
    "release_ray",
    "run_summary",
    "sweep_summary",
]
