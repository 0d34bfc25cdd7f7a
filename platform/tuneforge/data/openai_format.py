"""The one IR -> OpenAI chat record writer (the inverse of ``formats/openai.py``'s reader).

Every place that writes records for a later reader uses it: mode builds (``modes/materialize.py``)
and the held-out split (``data/holdout.py``). Tool use survives the trip: an assistant message's
``tool_calls`` are written in OpenAI's wire form (``{"id", "type": "function", "function": {"name",
"arguments": <JSON string>}}``), a message's ``name`` (the function a tool result answers) and the
conversation's ``tools`` are kept, and an untrained assistant turn gets ``"weight": 0``.

Reading the written record back gives the same messages and tools: arguments that were parsed from
JSON are written as JSON, free-text arguments as the text. An explicit ``train=True`` on an
assistant turn is written without a weight (the reader's default trains it, so the loss mask is
the same); a ``pretrain`` record is written as ``{"text"}``.
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.data.ir import Conversation, Message


def _arguments(args: Any) -> str:
    """Wire form of tool-call arguments: JSON, except text that the reader would keep as text."""
    if isinstance(args, str):
        try:
            json.loads(args)
        except json.JSONDecodeError:
            return args  # free text: read back as the same string
    return json.dumps(args, ensure_ascii=False)


def tool_call_record(call: dict[str, Any]) -> dict[str, Any]:
    """One IR tool call (``{"id", "name", "arguments"}``) in OpenAI's wire form."""
    out: dict[str, Any] = {}
    if call.get("id") is not None:
        out["id"] = call["id"]
    out["type"] = "function"
    out["function"] = {"name": call["name"], "arguments": _arguments(call.get("arguments", {}))}
    return out


def message_record(m: Message) -> dict[str, Any]:
    """One IR message as an OpenAI chat message."""
    msg: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.train is False:
        msg["weight"] = 0
    if m.tool_calls:
        msg["tool_calls"] = [tool_call_record(c) for c in m.tool_calls]
    if m.name is not None:
        msg["name"] = m.name
    return msg


def chat_record(conv: Conversation) -> dict[str, Any]:
    """A chat conversation as ``{"messages": [...], "tools": [...]}`` (``tools`` only when offered)."""
    record: dict[str, Any] = {"messages": [message_record(m) for m in conv.messages]}
    if conv.tools:
        record["tools"] = [dict(t) for t in conv.tools]
    return record


def to_openai(conv: Conversation) -> dict[str, Any]:
    """An IR record as an OpenAI chat JSONL row, or ``{"text"}`` for a pretrain record."""
    if conv.mode == "pretrain":
        return {"text": conv.text}
    return chat_record(conv)


__all__ = ["chat_record", "message_record", "to_openai", "tool_call_record"]
