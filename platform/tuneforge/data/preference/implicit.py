"""Preference records with an implicit prompt: two whole dialogues that share every turn but the last.

* ``hh`` (Anthropic HH-RLHF): ``chosen`` and ``rejected`` are transcripts,
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``.
* ``trl_implicit`` (TRL's conversational implicit-prompt form): ``chosen`` and ``rejected`` are
  message lists.

The shared turns are the prompt and each side's final assistant turn is its reply. Sides that
differ before their last turn are an error (``prompt_mismatch``): the loss compares two replies to
*one* prompt, and guessing which history to keep would train on a dialogue neither side contains.
"""

from __future__ import annotations

import re
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import FormatSpec, json_type, parse_tools
from tuneforge.data.ir import Message
from tuneforge.data.preference.common import (
    check_pair,
    check_prompt,
    check_reply,
    empty_reply,
    parse_messages,
    required,
)
from tuneforge.data.preference.ir import PreferenceRecord

_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def transcript(text: Any, field: str, source: str, line: int) -> tuple[Message, ...]:
    """An HH transcript -> its turns (content stripped of the surrounding whitespace)."""
    if not isinstance(text, str):
        raise DataError(f"must be a string, got {json_type(text)}", source, line, field)
    parts = _TURN.split(text)
    if len(parts) == 1 or parts[0].strip():
        raise DataError(
            "expected an HH transcript: turns that start with '\\n\\nHuman: ' or '\\n\\nAssistant: '",
            source,
            line,
            field,
        )
    roles, contents = parts[1::2], parts[2::2]
    return tuple(Message(_ROLE[r], c.strip()) for r, c in zip(roles, contents, strict=True))


def split_shared(
    chosen: tuple[Message, ...],
    rejected: tuple[Message, ...],
    source: str,
    line: int,
    list_fields: bool,
) -> tuple[tuple[Message, ...], Message, Message]:
    """(prompt, chosen reply, rejected reply) from two dialogues that differ only in their last turn."""
    fields = []
    for key, turns in (("chosen", chosen), ("rejected", rejected)):
        where = f"{key}[{len(turns) - 1}]" if list_fields else key
        if turns[-1].role != "assistant":
            raise DataError(f"must end on the assistant's reply, got {turns[-1].role!r}", source, line, where)
        if not turns[-1].content.strip() and not turns[-1].tool_calls:
            raise empty_reply(where, source, line)
        fields.append(where)
    prompt = chosen[:-1]
    if rejected[:-1] != prompt:
        at = next((i for i, (a, b) in enumerate(zip(prompt, rejected[:-1], strict=False)) if a != b), None)
        turn = min(len(prompt), len(rejected) - 1) if at is None else at
        raise DataError(
            f"chosen and rejected must share all turns but the last (the prompt); they differ at turn {turn}",
            source,
            line,
            f"rejected[{turn}]" if list_fields else "rejected",
            kind="prompt_mismatch",
        )
    check_prompt(prompt, "chosen", source, line)
    c, r = (
        check_reply(turns[-1], where, source, line)
        for turns, where in zip((chosen, rejected), fields, strict=True)
    )
    check_pair(c, r, (fields[0], fields[1]), source, line)
    return prompt, c, r


def hh(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    chosen = transcript(required(record, "chosen", source, line), "chosen", source, line)
    rejected = transcript(required(record, "rejected", source, line), "rejected", source, line)
    prompt, c, r = split_shared(chosen, rejected, source, line, list_fields=False)
    return PreferenceRecord(prompt, c, r, source=source, line=line)


def _dialogue(record: dict[str, Any], key: str, source: str, line: int) -> tuple[Message, ...]:
    raw = required(record, key, source, line)
    last = f"{key}[{len(raw) - 1}]." if isinstance(raw, list) else key
    try:
        return parse_messages(raw, key, source, line)
    except DataError as err:
        if err.kind == "empty_turn" and err.field.startswith(last):
            raise empty_reply(err.field, source, line) from None
        raise


def trl_implicit(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    chosen = _dialogue(record, "chosen", source, line)
    rejected = _dialogue(record, "rejected", source, line)
    prompt, c, r = split_shared(chosen, rejected, source, line, list_fields=True)
    tools = parse_tools(record.get("tools"), source, line, "tools")
    return PreferenceRecord(prompt, c, r, source=source, line=line, tools=tools)
