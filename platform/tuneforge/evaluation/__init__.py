"""Evaluation: per-example loss and task metrics, bootstrap confidence intervals. No Ray here."""
