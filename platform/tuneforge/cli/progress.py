"""Training progress for the terminal, read from MLflow while Ray Train runs.

Rank 0 logs every ``log_every`` steps to the tracking store; the driver polls that store, so the
progress bar shows the real step and loss without any extra channel from the workers. On a TTY it
is a rich progress bar; otherwise (``ray job logs``, CI) it prints one plain line per logged step.
"""

from __future__ import annotations

import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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
        from mlflow import MlflowClient

        client = MlflowClient(uri)
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
                        history = client.get_metric_history(run_id, key)
                    except Exception:  # the store may be briefly locked; try again next tick
                        continue
                    for m in sorted(history, key=lambda m: m.step):
                        if (key, m.step) in seen:
                            continue
                        seen.add((key, m.step))
                        line = f"step {m.step}/{total} {key} {m.value:.4f}"
                        if bar is not None:
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
