"""The held-out split as JSONL, written while the data plan streams the inputs (no second read).

The plan decides the split (content hash, after dedup, honouring catalog entries and
``on_bad_record``); a ``HoldoutWriter`` passed to ``plan_data`` sees each kept record with its side
and appends the eval ones, in plan order, so evaluation and the promotion gate get a file anyone can
re-score later, whose content hash versions the evaluation set. Chat records are written as OpenAI
chat records (``data/openai_format.py``: tool calls kept), raw text stays ``{"text"}`` (scored as
raw text, as it was trained), and a chat record without an answer is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from tuneforge.data.ir import Conversation
from tuneforge.data.openai_format import chat_record


def holdout_record(conv: Conversation) -> dict[str, Any] | None:
    """The record written for one held-out conversation (None: a chat without an answer)."""
    if conv.mode == "pretrain":
        return {"text": conv.text}
    if any(m.role == "assistant" for m in conv.messages):
        return chat_record(conv)
    return None


def raw_text_holdout(out: Path) -> Path:
    """Where the raw-text part of a mixed held-out split goes (one file holds one format)."""
    return out.with_name(f"{out.stem}.text{out.suffix}")


class HoldoutWriter:
    """A plan visitor that streams the eval split to ``out`` (and ``raw_text_holdout(out)``).

    A split of only chat (or only raw-text) records is one file, ``out``; a mixed split writes its
    chat records to ``out`` and its raw text beside it, because a file holds one format. Lines go to
    temporary files while the plan runs; ``publish`` renames them into place (``abort`` removes
    them), so a failed plan leaves no partial holdout behind.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = {"chat": self.out.with_suffix(".chat.tmp"), "text": self.out.with_suffix(".text.tmp")}
        self._files: dict[str, IO[str]] = {}
        self.counts = {"chat": 0, "text": 0}

    def visit(self, split: str, index: int, conv: Conversation, side: str) -> None:
        if side != "eval":
            return
        record = holdout_record(conv)
        if record is None:
            return
        kind = "text" if "text" in record else "chat"
        if kind not in self._files:
            self._files[kind] = self._tmp[kind].open("w")
        self._files[kind].write(json.dumps(record) + "\n")
        self.counts[kind] += 1

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def publish(self) -> Path:
        """Move the written split into place; returns ``out`` (empty when the split is)."""
        self._close()
        chat, text = self._tmp["chat"], self._tmp["text"]
        if self.counts["chat"] and self.counts["text"]:
            text.replace(raw_text_holdout(self.out))
            chat.replace(self.out)
        elif self.counts["text"]:
            text.replace(self.out)
        elif self.counts["chat"]:
            chat.replace(self.out)
        else:
            empty = self.out.with_suffix(".tmp")
            empty.write_text("")
            empty.replace(self.out)
        return self.out

    def abort(self) -> None:
        self._close()
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)


__all__ = ["HoldoutWriter", "holdout_record", "raw_text_holdout"]
