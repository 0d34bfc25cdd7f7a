"""Write the held-out split as a JSONL file next to the run.

The Ray pipeline splits by content hash; writing the same split (same function, same seed) to
``eval.jsonl`` gives evaluation and the promotion gate a file that anyone can re-score later, and
whose content hash versions the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import JobConfig
from tuneforge.data import Conversation, is_eval, read_conversations


def _to_openai(conv: Conversation) -> dict:
    msgs = []
    for m in conv.messages:
        msg: dict = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.train is False:
            msg["weight"] = 0
        if getattr(m, "tool_calls", None):
            msg["tool_calls"] = list(m.tool_calls)
        msgs.append(msg)
    return {"messages": msgs}


def write_holdout(job: JobConfig, out: Path) -> Path:
    """The eval records of this job (``data.eval_files``, or the hash split of the train files)."""
    d = job.data
    specs = d.eval_files or d.train_files
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for spec in specs:
            for conv in read_conversations(spec.path, spec.format):
                if d.eval_files or is_eval(conv, d.eval_fraction, job.trainer.seed):
                    f.write(json.dumps(_to_openai(conv)) + "\n")
    tmp.replace(out)
    return out
