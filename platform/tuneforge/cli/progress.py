"""Training progress and summaries for the terminal: they live in ``tuneforge.frontend``, shared with
the ``jobs/*.py`` scripts that ``ray job submit`` runs (which must not import the CLI)."""

from __future__ import annotations

from tuneforge.frontend import TrainingProgress, promotion_line, run_summary, sweep_summary

__all__ = ["TrainingProgress", "promotion_line", "run_summary", "sweep_summary"]
