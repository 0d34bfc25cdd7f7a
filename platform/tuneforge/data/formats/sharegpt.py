"""ShareGPT records: ``{"conversations": [{"from": ..., "value": ...}], "system": ..., "tools": ...}``.

Roles: human -> user, gpt -> assistant, system -> system, function_call -> an assistant message
whose ``value`` is the JSON call(s) ``{"name", "arguments"}``, observation -> tool (the result).
LLaMA-Factory's ``tags`` rename the message keys and role names (e.g. ``role``/``content`` and
``user``/``assistant``), which is how the same code reads its catalog entries.
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import (
    FormatSpec,
    json_type,
    nonempty_answer,
    optional_str,
    parse_arguments,
    parse_tools,
)
from tuneforge.data.ir import Conversation, Message

_DEFAULT_TAGS = {
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_ROLE_OF_TAG = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}


def sharegpt_to_ir(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> Conversation:
    # LLaMA-Factory names the column mapping's key "messages"; the default column is "conversations".
    key = spec.columns.get("messages") or spec.columns.get("conversations") or "conversations"
    if key not in record:
        raise DataError("missing required field", source, line, key)
    raw = record[key]
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else json_type(raw)
        raise DataError(f"must be a non-empty array of turns, got {got}", source, line, key)
    role_key, content_key = spec.tag("role_tag", "from"), spec.tag("content_tag", "value")
    roles = {spec.tag(tag, default): _ROLE_OF_TAG[tag] for tag, default in _DEFAULT_TAGS.items()}
    system = optional_str(record, spec.col("system"), source, line)
    messages = [Message("system", system)] if system else []
    for i, turn in enumerate(raw):
        field = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise DataError(f"a turn must be an object, got {json_type(turn)}", source, line, field)
        if role_key not in turn:
            raise DataError("missing required field", source, line, f"{field}.{role_key}")
        tag = turn[role_key]
        if tag not in roles:
            raise DataError(
                f"unknown role {tag!r}; expected one of {', '.join(roles)}",
                source,
                line,
                f"{field}.{role_key}",
            )
        if content_key not in turn:
            raise DataError("missing required field", source, line, f"{field}.{content_key}")
        value = turn[content_key]
        if not isinstance(value, str):
            raise DataError(
                f"must be a string, got {json_type(value)}", source, line, f"{field}.{content_key}"
            )
        role = roles[tag]
        if role == "function_call":
            calls = _calls(value, source, line, f"{field}.{content_key}")
            messages.append(Message("assistant", "", tool_calls=calls))
        else:
            if role == "assistant":
                nonempty_answer(value, source, line, f"{field}.{content_key}")
            messages.append(Message(role, value))
    tools = parse_tools(record.get(spec.col("tools")), source, line, spec.col("tools"))
    return Conversation(messages=tuple(messages), source=source, line=line, mode="chat", tools=tools)


def _calls(value: str, source: str, line: int, field: str) -> tuple[dict[str, Any], ...]:
    """A function_call turn's value: one ``{"name", "arguments"}`` object or an array of them."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise DataError(f"a function_call value must be JSON: {exc.msg}", source, line, field) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DataError('a function call must be {"name": ..., "arguments": ...}', source, line, field)
        calls.append(
            {
                "id": None,
                "name": item["name"],
                "arguments": parse_arguments(item.get("arguments"), source, line, field),
            }
        )
    return tuple(calls)
