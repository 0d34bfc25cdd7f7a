"""A job's data through Ray Data, whichever objective it trains: SFT rows or preference rows.

The drivers (``runner.run_job``, ``tune.driver.run_sweep``) call these two and never ask which
pipeline a job needs: a preference objective (``method.objective``: dpo, ipo, orpo, simpo, kto)
reads preference files through ``preference_pipeline``, everything else through ``data_pipeline``.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.config import JobConfig
from tuneforge.data.plan import DataPlan
from tuneforge.data.preference.plan import PreferencePlan, write_pairs
from tuneforge.distributed.data_pipeline import PreparedData, build_datasets
from tuneforge.distributed.holdout import write_holdout
from tuneforge.distributed.preference_pipeline import build_preference_datasets


def job_datasets(
    job: JobConfig,
    plan: DataPlan | PreferencePlan,
    tok_dir: Path,
    base_dir: Path,
    *,
    materialize: bool | None = None,
) -> PreparedData:
    """Tokenized train/eval datasets of ``job`` (through the tokenized-data cache; ``materialize``:
    pin them in the object store, ``None``: when small, ``data_pipeline.MATERIALIZE_MAX_BYTES``)."""
    if isinstance(plan, PreferencePlan):
        return build_preference_datasets(job, str(tok_dir), plan, base_dir, materialize=materialize)
    return build_datasets(job.data, job.trainer, str(tok_dir), plan, materialize=materialize)


def job_holdout(job: JobConfig, plan: DataPlan | PreferencePlan, out: Path) -> Path:
    """The held-out split as a file the evaluator and the promotion gate read (pairs for preference)."""
    if isinstance(plan, PreferencePlan):
        if plan.holdout is not None and Path(plan.holdout).resolve() == Path(out).resolve() and out.exists():
            return out
        return write_pairs(plan.held_out, out)
    return write_holdout(job, plan, out)
