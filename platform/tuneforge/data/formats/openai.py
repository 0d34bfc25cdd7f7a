"""OpenAI chat fine-tuning records: ``{"messages": [...], "tools": [...]}``.

Roles system/user/assistant/tool; an assistant message may carry ``tool_calls`` (then ``content``
may be null or absent), or the legacy single ``function_call``; per-assistant ``weight`` 0/1 turns
the loss off/on for that turn (OpenAI's own semantics).
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import (
    FormatSpec,
    json_type,
    nonempty_answer,
    parse_arguments,
    parse_tools,
)
from tuneforge.data.ir import ROLES, Conversation, Message


def openai_to_ir(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> Conversation:
    key = spec.col("messages")
    if key not in record:
        raise DataError("missing required field", source, line, key)
    raw = record[key]
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else json_type(raw)
        raise DataError(f"must be a non-empty array of messages, got {got}", source, line, key)
    messages = tuple(_message(m, f"{key}[{i}]", source, line) for i, m in enumerate(raw))
    tools = parse_tools(record.get(spec.col("tools")), source, line, spec.col("tools"))
    return Conversation(messages=messages, source=source, line=line, mode="chat", tools=tools)


def _message(msg: Any, field: str, source: str, line: int) -> Message:
    if not isinstance(msg, dict):
        raise DataError(f"a message must be an object, got {json_type(msg)}", source, line, field)
    if "role" not in msg:
        raise DataError("missing required field", source, line, f"{field}.role")
    role = msg["role"]
    if role not in ROLES:
        raise DataError(
            f"unknown role {role!r}; expected one of {', '.join(ROLES)}", source, line, f"{field}.role"
        )
    calls = _tool_calls(msg, role, field, source, line)
    if calls is not None and msg.get("content") is None:
        content = ""
    else:
        content = _content(msg, f"{field}.content", source, line)
    name = msg.get("name") if isinstance(msg.get("name"), str) else None
    if role == "tool" and name is None and isinstance(msg.get("tool_call_id"), str):
        name = msg["tool_call_id"]
    weight = _weight(msg, role, f"{field}.weight", source, line)
    if role == "assistant" and calls is None and weight is not False:
        nonempty_answer(content, source, line, f"{field}.content", " (or give it weight 0)")
    return Message(role=role, content=content, train=weight, tool_calls=calls, name=name)


def _tool_calls(
    msg: dict[str, Any], role: str, field: str, source: str, line: int
) -> tuple[dict[str, Any], ...] | None:
    """``tool_calls`` (or legacy ``function_call``) -> ``({"id", "name", "arguments"}, ...)``."""
    raw, key = msg.get("tool_calls"), "tool_calls"
    if not raw and msg.get("function_call"):
        raw, key = [msg["function_call"]], "function_call"
    if not raw:
        return None
    if role != "assistant":
        raise DataError("only assistant messages may call tools", source, line, f"{field}.{key}")
    if not isinstance(raw, list):
        raise DataError(f"must be an array, got {json_type(raw)}", source, line, f"{field}.{key}")
    calls = []
    for j, call in enumerate(raw):
        where = f"{field}.{key}" if key == "function_call" else f"{field}.{key}[{j}]"
        if not isinstance(call, dict):
            raise DataError(f"a tool call must be an object, got {json_type(call)}", source, line, where)
        fn = call.get("function", call)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError("a tool call needs a function name", source, line, f"{where}.function.name")
        args = parse_arguments(fn.get("arguments"), source, line, f"{where}.function.arguments")
        calls.append({"id": call.get("id"), "name": fn["name"], "arguments": args})
    return tuple(calls)


def _content(msg: dict[str, Any], field: str, source: str, line: int) -> str:
    """A string, or OpenAI's list of ``{"type": "text", "text": ...}`` parts joined without separator."""
    if "content" not in msg:
        raise DataError("missing required field", source, line, field)
    content = msg["content"]
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DataError(
            f"must be a string or an array of text parts, got {json_type(content)}", source, line, field
        )
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise DataError(
                f"a content part must be an object, got {json_type(part)}", source, line, f"{field}[{j}]"
            )
        if part.get("type") != "text":
            raise DataError(
                f"unsupported content part type {part.get('type')!r}; only 'text' is supported",
                source,
                line,
                f"{field}[{j}].type",
            )
        if not isinstance(part.get("text"), str):
            got = json_type(part.get("text"))
            raise DataError(f"must be a string, got {got}", source, line, f"{field}[{j}].text")
        texts.append(part["text"])
    return "".join(texts)


def _weight(msg: dict[str, Any], role: str, field: str, source: str, line: int) -> bool | None:
    """OpenAI's per-assistant-message ``weight`` (0 or 1) -> ``Message.train``; absent -> None (default)."""
    if "weight" not in msg:
        return None
    weight = msg["weight"]
    if role != "assistant":
        raise DataError("only assistant messages take a weight", source, line, field)
    if type(weight) is not int or weight not in (0, 1):
        raise DataError(f"must be 0 or 1, got {json.dumps(weight)}", source, line, field)
    return weight == 1
