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


def holdout_record(conv: Conversation) -> dict[str, Any] | None:
    """The record written for one held-out conversation: raw text stays ``{"text"}`` (scored as raw
    text, as it was trained), chat records become OpenAI chat records; a chat without an answer: None."""
    if conv.mode == "pretrain":
        return {"text": conv.text}
    if any(m.role == "assistant" for m in conv.messages):
        return to_openai_record(conv)
    return None


def raw_text_holdout(out: Path) -> Path:
    """Where the raw-text part of a mixed held-out split goes (one file holds one format)."""
    return out.with_name(f"{out.stem}.text{out.suffix}")


def write_holdout(job: JobConfig, plan: DataPlan, out: Path) -> Path:
    """Write the eval records of this job's plan, each in the form it was trained in.

    A split of only chat (or only raw-text) records is one file, ``out``. A mixed split writes its
    chat records to ``out`` and its raw text to ``raw_text_holdout(out)``, because a file holds
    one format; both are scored the way they were trained.
    """
    d = job.data
    out.parent.mkdir(parents=True, exist_ok=True)
    chat: list[str] = []
    text: list[str] = []
    for sp in plan.sources:
        for conv in plan.iter_conversations(sp.split, sp.index):
            side = keep_record(conv, sp.split, d.eval_fraction, job.trainer.seed, bool(d.eval_files))
            record = holdout_record(conv) if side == "eval" else None
            if record is not None:
                (text if "text" in record else chat).append(json.dumps(record))
    files = {out: chat or text}
    if chat and text:
        files[raw_text_holdout(out)] = text
    for path, lines in files.items():
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(path)
    return out
