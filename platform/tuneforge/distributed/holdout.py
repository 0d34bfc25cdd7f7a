"""Write the held-out split as a JSONL file next to the run (``data/holdout.py`` does the writing).

A run writes it during its data plan's single pass (``stages.prepare``: a ``HoldoutWriter`` rides on
the plan), so ``write_holdout`` with that plan and path only returns the file; given another plan or
path it streams the plan's files once more to write it.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.config import JobConfig
from tuneforge.data.holdout import HoldoutWriter, holdout_record, raw_text_holdout
from tuneforge.data.openai_format import chat_record as to_openai_record
from tuneforge.data.plan import DataPlan, keep_record


def write_holdout(job: JobConfig, plan: DataPlan, out: Path) -> Path:
    """The eval records of this job's plan, each in the form it was trained in, at ``out``.

    A split of only chat (or only raw-text) records is one file, ``out``. A mixed split writes its
    chat records to ``out`` and its raw text to ``raw_text_holdout(out)``, because a file holds
    one format; both are scored the way they were trained.
    """
    out = Path(out)
    if plan.holdout is not None and Path(plan.holdout).resolve() == out.resolve() and out.exists():
        return out  # written by the plan's own pass
    d = job.data
    writer = HoldoutWriter(out)
    try:
        for sp in plan.sources:
            for conv in plan.iter_conversations(sp.split, sp.index):
                side = keep_record(conv, sp.split, d.eval_fraction, job.trainer.seed, bool(d.eval_files))
                writer.visit(sp.split, sp.index, conv, side or "")
    except BaseException:
        writer.abort()
        raise
    return writer.publish()


__all__ = ["holdout_record", "raw_text_holdout", "to_openai_record", "write_holdout"]
