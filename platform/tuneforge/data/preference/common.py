"""Checks and parsers the preference formats share: prompts, replies, labels, and their errors.

Every problem is a ``DataError`` in the SFT readers' style (``file:line: field: problem``) with a
kind that ``on_bad_record: skip`` counts: ``identical_replies`` (the pair teaches nothing),
``empty_reply`` (a loss over a reply of zero tokens but the end marker), ``prompt_not_user`` (the
replies must answer the prompt's last turn) and the SFT kinds (``schema`` for a missing field or a
wrong type). Message lists are parsed by the SFT converters (OpenAI ``role``/``content`` or ShareGPT
``from``/``value`` turns), so prompts get exactly the SFT checks and field paths.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import FormatSpec, json_type
from tuneforge.data.formats.openai import openai_to_ir
from tuneforge.data.formats.sharegpt import sharegpt_to_ir
from tuneforge.data.ir import Message
from tuneforge.data.preference.ir import PROMPT_END_ROLES


def required(record: dict[str, Any], key: str, source: str, line: int) -> Any:
    """The value of a field that must be present (null is present: the type check then names it)."""
    if key not in record:
        raise DataError("missing required field", source, line, key)
    return record[key]


def empty_reply(field: str, source: str, line: int, paired: bool = True) -> DataError:
    what = "a preference pair needs two non-empty replies" if paired else "a KTO record needs a reply"
    return DataError(f"empty reply: {what}", source, line, field, kind="empty_reply")


def reply_text(record: dict[str, Any], key: str, source: str, line: int, paired: bool = True) -> Message:
    """A reply given as a plain string (``response_j``, TRL's standard ``chosen``)."""
    value = required(record, key, source, line)
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {json_type(value)}", source, line, key)
    if not value.strip():
        raise empty_reply(key, source, line, paired)
    return Message("assistant", value)


def parse_messages(
    raw: Any, field: str, source: str, line: int, tags: dict[str, str] | None = None
) -> tuple[Message, ...]:
    """A list of turns in either dialect: ShareGPT (``from``/``value``, or catalog ``tags``) or OpenAI.

    An empty assistant turn inside it is the SFT ``empty_turn`` error, naming ``field[i]``.
    """
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else json_type(raw)
        raise DataError(f"must be a non-empty array of messages, got {got}", source, line, field)
    first = raw[0]
    if tags or (isinstance(first, dict) and "from" in first):
        spec = FormatSpec("sharegpt", {"messages": field}, dict(tags or {}))
        return sharegpt_to_ir({field: raw}, spec, source, line).messages
    return openai_to_ir({field: raw}, FormatSpec("openai", {"messages": field}), source, line).messages


def reply_from_list(record: dict[str, Any], key: str, source: str, line: int, paired: bool = True) -> Message:
    """A reply given as a one-message list (OpenAI's ``preferred_output``, TRL's conversational form)."""
    raw = required(record, key, source, line)
    if not isinstance(raw, list):
        raise DataError(
            f"must be an array holding one assistant message, got {json_type(raw)}", source, line, key
        )
    if len(raw) != 1:
        raise DataError(f"must hold exactly one assistant message, got {len(raw)}", source, line, key)
    try:
        (message,) = parse_messages(raw, key, source, line)
    except DataError as err:
        if err.kind == "empty_turn":
            raise empty_reply(err.field, source, line, paired) from None
        raise
    return check_reply(message, f"{key}[0]", source, line)


def reply_object(
    record: dict[str, Any], key: str, source: str, line: int, tags: dict[str, str] | None = None
) -> Message:
    """A reply given as one turn object (LLaMA-Factory's ``chosen: {"from": "gpt", "value": ...}``)."""
    raw = required(record, key, source, line)
    if not isinstance(raw, dict):
        got = json_type(raw)
        raise DataError(
            f'must be a turn object like {{"from": "gpt", "value": ...}}, got {got}', source, line, key
        )
    content_key = (tags or {}).get("content_tag") or ("value" if "from" in raw else "content")
    value = raw.get(content_key)
    if isinstance(value, str) and not value.strip():
        raise empty_reply(f"{key}.{content_key}", source, line)
    try:
        (message,) = parse_messages([raw], key, source, line, tags)
    except DataError as err:  # name the object's own field, not a list element
        field = err.field.replace(f"{key}[0]", key, 1)
        raise DataError(err.message, source, line, field, kind=err.kind) from None
    return check_reply(message, key, source, line)


def check_reply(message: Message, field: str, source: str, line: int) -> Message:
    if message.role != "assistant":
        raise DataError(f"a reply must be an assistant turn, got {message.role!r}", source, line, field)
    return Message("assistant", message.content, tool_calls=message.tool_calls)


def check_prompt(prompt: tuple[Message, ...], field: str, source: str, line: int) -> tuple[Message, ...]:
    """The prompt must end on the turn the replies answer: a user turn (or a tool result)."""
    if not prompt or all(m.role == "system" for m in prompt):
        raise DataError(
            "the prompt has no user turn; the replies must answer one",
            source,
            line,
            field,
            kind="prompt_not_user",
        )
    if prompt[-1].role not in PROMPT_END_ROLES:
        raise DataError(
            f"the prompt must end on a user turn (the replies answer it), got {prompt[-1].role!r}",
            source,
            line,
            field,
            kind="prompt_not_user",
        )
    return prompt


def check_pair(chosen: Message, rejected: Message, fields: tuple[str, str], source: str, line: int) -> None:
    """Two identical replies carry no preference (the DPO loss of such a pair is a constant)."""
    if (chosen.content, chosen.tool_calls) == (rejected.content, rejected.tool_calls):
        raise DataError(
            f"same text as the chosen reply ({fields[0]}); a preference pair needs two different replies",
            source,
            line,
            fields[1],
            kind="identical_replies",
        )


def parse_label(record: dict[str, Any], key: str, source: str, line: int) -> bool:
    value = required(record, key, source, line)
    if not isinstance(value, bool):
        raise DataError(
            f"must be a boolean (true = desirable, false = undesirable), got {json_type(value)}",
            source,
            line,
            key,
        )
    return value


def system_prefix(record: dict[str, Any], key: str, source: str, line: int) -> tuple[Message, ...]:
    """An optional top-level system prompt (LLaMA-Factory's ``system`` column) as a leading message."""
    value = record.get(key)
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {json_type(value)}", source, line, key)
    return (Message("system", value),)
