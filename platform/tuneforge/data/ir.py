"""The chat intermediate representation every reader produces and every template consumes.

Readers turn many on-disk formats into ``Conversation`` objects, so templates, splitting and
statistics are written once. ``to_dict``/``from_dict`` give a JSON-serialisable form for shipping
records through Ray Data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

ROLES: tuple[str, ...] = ("assistant", "system", "tool", "user")


@dataclass(frozen=True)
class Message:
    """One turn. ``train`` overrides the default loss mask: None means "trained iff role is assistant"."""

    role: str
    content: str
    train: bool | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"content must be a str, got {type(self.content).__name__}")

    @property
    def trained(self) -> bool:
        """Whether this message's tokens carry labels (explicit ``train`` wins over the role default)."""
        return self.role == "assistant" if self.train is None else self.train


@dataclass(frozen=True)
class Conversation:
    """A training record: messages plus where it came from (for error messages and statistics).

    ``mode`` records the source shape ("chat" for chat formats, "instruct" for Alpaca-style records).
    """

    messages: tuple[Message, ...]
    source: str = ""
    line: int = 0
    mode: str = "chat"

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON form (lists, str, int, bool, None); ``from_dict`` inverts it exactly."""
        return {
            "messages": [{"role": m.role, "content": m.content, "train": m.train} for m in self.messages],
            "source": self.source,
            "line": self.line,
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        """Inverse of ``to_dict``; tolerates a missing ``train`` key (None) on messages."""
        messages = tuple(
            Message(role=m["role"], content=m["content"], train=m.get("train")) for m in d["messages"]
        )
        return cls(
            messages=messages, source=d.get("source", ""), line=d.get("line", 0), mode=d.get("mode", "chat")
        )

    def content_hash(self) -> str:
        """sha256 hex of the canonical (role, content) sequence, stable across runs and processes.

        Source, line and the ``train`` flags are left out on purpose: the same dialogue read from two
        files, or with different loss weights, is the same text, so it must land in the same split.
        """
        canonical = json.dumps(
            [[m.role, m.content] for m in self.messages], ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
