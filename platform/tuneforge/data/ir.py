"""The chat intermediate representation every reader produces and every template consumes.

Readers turn many on-disk formats into ``Conversation`` objects, so templates, splitting and
statistics are written once. ``to_dict``/``from_dict`` give an exact JSON-serialisable form (the
Ray Data pipeline ships flatter record rows instead: ``data/record_rows.py``); the OpenAI chat form
that files are written in is ``data/openai_format.py``.

Tool use is part of the IR, not of a format: an assistant message may carry ``tool_calls`` (each a
``{"id", "name", "arguments"}`` dict, arguments parsed from JSON when they were a JSON string), a
``tool`` message carries a result (``name`` = the function it answers), and a conversation may carry
the ``tools`` (JSON schemas) the model was offered. Raw text for continued pretraining is a
conversation with ``mode="pretrain"`` and one trained message whose content is the text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

ROLES: tuple[str, ...] = ("assistant", "system", "tool", "user")
MODES: tuple[str, ...] = ("chat", "instruct", "pretrain")


@dataclass(frozen=True)
class Message:
    """One turn. ``train`` overrides the default loss mask: None means "trained iff role is assistant"."""

    role: str
    content: str
    train: bool | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"content must be a str, got {type(self.content).__name__}")
        if self.tool_calls is not None:
            if self.role != "assistant":
                raise ValueError("only assistant messages carry tool_calls")
            if not isinstance(self.tool_calls, tuple):
                object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    @property
    def trained(self) -> bool:
        """Whether this message's tokens carry labels (explicit ``train`` wins over the role default)."""
        return self.role == "assistant" if self.train is None else self.train

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content, "train": self.train}
        if self.tool_calls is not None:
            d["tool_calls"] = [dict(c) for c in self.tool_calls]
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, m: dict[str, Any]) -> Message:
        calls = m.get("tool_calls")
        return cls(
            role=m["role"],
            content=m["content"],
            train=m.get("train"),
            tool_calls=None if calls is None else tuple(calls),
            name=m.get("name"),
        )


@dataclass(frozen=True)
class Conversation:
    """A training record: messages plus where it came from (for error messages and statistics).

    ``mode`` records the source shape: "chat" for chat formats, "instruct" for Alpaca-style records,
    "pretrain" for raw text (one message, every token trained, no chat markup).
    """

    messages: tuple[Message, ...]
    source: str = ""
    line: int = 0
    mode: str = "chat"
    tools: tuple[dict[str, Any], ...] | None = None
    metadata: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON form (lists, str, int, bool, None); ``from_dict`` inverts it exactly."""
        d: dict[str, Any] = {
            "messages": [m.to_dict() for m in self.messages],
            "source": self.source,
            "line": self.line,
            "mode": self.mode,
        }
        if self.tools is not None:
            d["tools"] = [dict(t) for t in self.tools]
        if self.metadata is not None:
            d["metadata"] = dict(self.metadata)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        """Inverse of ``to_dict``; tolerates a missing ``train`` key (None) on messages."""
        tools = d.get("tools")
        return cls(
            messages=tuple(Message.from_dict(m) for m in d["messages"]),
            source=d.get("source", ""),
            line=d.get("line", 0),
            mode=d.get("mode", "chat"),
            tools=None if tools is None else tuple(tools),
            metadata=d.get("metadata"),
        )

    @property
    def text(self) -> str:
        """The raw text of a ``pretrain`` record (its single message)."""
        return self.messages[0].content

    def content_hash(self) -> str:
        """sha256 hex of the canonical (role, content[, tool_calls]) sequence, stable across runs.

        Source, line and the ``train`` flags are left out on purpose: the same dialogue read from two
        files, or with different loss weights, is the same text, so it must land in the same split
        (and counts as a duplicate). Tool calls and the offered tools are part of the text the model
        sees, so they are in; a plain conversation keeps the original ``[[role, content], ...]`` form.
        """
        turns: list[list[Any]] = [
            [m.role, m.content] if m.tool_calls is None else [m.role, m.content, list(m.tool_calls)]
            for m in self.messages
        ]
        body: Any = turns if self.tools is None else {"messages": turns, "tools": list(self.tools)}
        canonical = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
