"""Generic parsers for the plain-text shapes that modes produce and metrics read back.

A leaf: it imports nothing of tuneforge's but the IR's shape (duck-typed), so both sides use it
without importing each other: ``tuneforge.modes`` builds numbered steps and question lists with
it, ``tuneforge.evaluation`` parses a model's generations with the same rules.
"""

from __future__ import annotations

import re
from typing import Any

#: A numbered line: ``1.``, ``1)`` or ``Step 1:`` (also ``step 1 -``), then the item text.
NUMBERED_LINE = re.compile(r"^\s*(?:(\d+)[.)]|step\s+(\d+)\s*[:.)-])\s+(.*\S)", re.IGNORECASE)
#: A list marker at the start of a line: a number (``1.``, ``1)``) or a bullet (``-``, ``*``, ``•``).
LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


def numbered_item(line: str) -> tuple[int, str] | None:
    """(number, item) when ``line`` is a numbered line, else None."""
    m = NUMBERED_LINE.match(line)
    return (int(m.group(1) or m.group(2)), m.group(3).strip()) if m else None


def parse_numbered(text: str) -> list[tuple[int, str]]:
    """(number, item) for every numbered line of ``text`` (``1.``, ``1)``, ``Step 1:``)."""
    return [item for ln in text.splitlines() if (item := numbered_item(ln)) is not None]


def list_items(text: str) -> list[str]:
    """One item per non-blank line, numbering and bullets stripped."""
    return [item for ln in text.splitlines() if (item := LIST_MARKER.sub("", ln).strip())]


def last_user(conv: Any) -> str:
    """The content of the last user message of a conversation (the input the model answered)."""
    return next((m.content for m in reversed(conv.messages) if m.role == "user"), "")


def has_user_marker(conv: Any, marker: str) -> bool:
    """Whether some user turn of ``conv`` is exactly ``marker`` (surrounding blanks ignored)."""
    return any(m.role == "user" and m.content.strip() == marker for m in conv.messages)
