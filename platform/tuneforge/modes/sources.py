"""Reading the data people already have, for the builders: chat/instruction files, text, pairs.

Anything the data layer reads (OpenAI, Alpaca, ShareGPT, text; dataset catalogs) goes through
``tuneforge.data.read_source`` so a bad record fails here exactly as it would in training.
Plain text and ad-hoc JSON (SQuAD, commit logs, version pairs) are read directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tuneforge.data import Conversation, DataError, read_source

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def suffix(path: str) -> str:
    """Lower-cased extension, ignoring a catalog ``#name``."""
    return Path(path.split("#", 1)[0]).suffix.lower()


def conversations(sources: Sequence[str]) -> Iterator[Conversation]:
    """Every record of every data file, through the data layer's readers (format detected per file)."""
    for src in sources:
        yield from read_source(src).conversations


def exchanges(sources: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(last user turn, last assistant turn) of each chat/instruction record that has both."""
    for conv in conversations(sources):
        pair = last_exchange(conv)
        if pair is not None:
            yield pair


def last_exchange(conv: Conversation) -> tuple[str, str] | None:
    """The final user message and the assistant message answering it, or None."""
    msgs = [m for m in conv.messages if m.role in ("user", "assistant") and m.content.strip()]
    for i in range(len(msgs) - 1, 0, -1):
        if msgs[i].role == "assistant" and msgs[i - 1].role == "user":
            return msgs[i - 1].content, msgs[i].content
    return None


def read_lines(path: str) -> list[str]:
    """Lines of a text file without line endings (blank lines kept: files may be line-aligned)."""
    return Path(path).read_text(encoding="utf-8-sig").splitlines()


def load_json(path: str) -> Any:
    """A ``.json`` document, or the list of records of a ``.jsonl`` file."""
    text = Path(path).read_text(encoding="utf-8-sig")
    if suffix(path) == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def records(path: str) -> list[dict[str, Any]]:
    """A JSON/JSONL file as a list of dict records (a dict-of-records, as arXivEdits ships, is flattened)."""
    data = load_json(path)
    if isinstance(data, dict):
        data = data.get("data", list(data.values()))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError("expected a list of JSON objects", path, kind="schema")
    return data


def texts(sources: Sequence[str]) -> Iterator[str]:
    """Raw text from any source: ``.txt`` non-blank lines, ``.md`` paragraphs, data files' messages."""
    for src in sources:
        ext = suffix(src)
        if ext in (".txt", ".md", ".src") or ext.startswith(".ref"):
            body = Path(src).read_text(encoding="utf-8-sig")
            parts = re.split(r"\n\s*\n", body) if ext == ".md" else body.splitlines()
            yield from (p.strip() for p in parts if p.strip())
        else:
            for conv in read_source(src).conversations:
                yield from (m.content for m in conv.messages if m.role in ("assistant", "user") and m.content)


def sentences(text: str) -> list[str]:
    """Split prose into sentences (a regex: nltk's punkt needs data no package ships)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def first_key(record: dict[str, Any], *keys: str) -> Any:
    """The value of the first key present (builders accept the common spellings of a field)."""
    for k in keys:
        if k in record and record[k] not in (None, ""):
            return record[k]
    return None
