"""Write the held-out split as a JSONL file next to the run.

The driver's data plan decides the split (content hash, after dedup, honouring registry entries and
``on_bad_record``); writing exactly that split to ``eval.jsonl`` gives evaluation and the promotion
gate a file anyone can re-score later, and whose content hash versions the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.config import JobConfig
from tuneforge.data import Conversation
from tuneforge.data.plan import DataPlan, keep_record


def to_openai_record(conv: Conversation) -> dict[str, Any]:
    """OpenAI chat JSONL form of a conversation (weight 0 for untrained assistant turns, tools kept)."""
    msgs = []
    for m in conv.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.train is False:
            msg["weight"] = 0
        if m.tool_calls:
            msg["tool_calls"] = list(m.tool_calls)
        if m.name:
            msg["name"] = m.name
        msgs.append(msg)
    record: dict[str, Any] = {"messages": msgs}
    if conv.tools:
        record["tools"] = list(conv.tools)
    return record


def write_holdout(job: JobConfig, plan: DataPlan, out: Path) -> Path:
    """Write the eval records of this job's plan (chat records only: raw text has no assistant turn)."""
    d = job.data
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for sp in plan.sources:
            for conv in plan.iter_conversations(sp.split, sp.index):
                side = keep_record(conv, sp.split, d.eval_fraction, job.trainer.seed, bool(d.eval_files))
                if side == "eval" and any(m.role == "assistant" for m in conv.messages):
                    f.write(json.dumps(to_openai_record(conv)) + "\n")
    tmp.replace(out)
    return out
