"""Preference records whose prompt is a field of its own: OpenAI, StackExchange and TRL's explicit forms.

* ``openai_preference`` (OpenAI's DPO fine-tuning JSONL): ``input: {messages, tools?}``,
  ``preferred_output`` and ``non_preferred_output``, each a list holding one assistant message.
* ``stack_exchange`` (``lvwerra/stack-exchange-paired``): ``question``, ``response_j`` (preferred),
  ``response_k``.
* ``trl_explicit``: ``prompt`` (a string = one user turn, or a message list) + ``chosen`` and
  ``rejected`` (strings, or one-assistant-message lists).
* ``trl_unpaired`` (TRL's KTO form): ``prompt`` + ``completion`` + a boolean ``label``.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import FormatSpec, json_type, parse_tools, required_str
from tuneforge.data.ir import Message
from tuneforge.data.preference.common import (
    check_pair,
    check_prompt,
    parse_label,
    parse_messages,
    reply_from_list,
    reply_text,
    required,
)
from tuneforge.data.preference.ir import PreferenceRecord


def openai_preference(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    inp = required(record, "input", source, line)
    if not isinstance(inp, dict):
        raise DataError(f"must be an object with 'messages', got {json_type(inp)}", source, line, "input")
    if "messages" not in inp:
        raise DataError("missing required field", source, line, "input.messages")
    prompt = parse_messages(inp["messages"], "input.messages", source, line)
    check_prompt(prompt, "input.messages", source, line)
    chosen = reply_from_list(record, "preferred_output", source, line)
    rejected = reply_from_list(record, "non_preferred_output", source, line)
    check_pair(chosen, rejected, ("preferred_output", "non_preferred_output"), source, line)
    tools = parse_tools(inp.get("tools"), source, line, "input.tools")
    return PreferenceRecord(prompt, chosen, rejected, source=source, line=line, tools=tools)


def stack_exchange(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    question = required_str(record, "question", source, line)
    chosen = reply_text(record, "response_j", source, line)
    rejected = reply_text(record, "response_k", source, line)
    check_pair(chosen, rejected, ("response_j", "response_k"), source, line)
    return PreferenceRecord((Message("user", question),), chosen, rejected, source=source, line=line)


def _prompt(record: dict[str, Any], source: str, line: int) -> tuple[Message, ...]:
    """TRL's ``prompt``: a string (one user turn) or a list of messages ending on a user turn."""
    raw = required(record, "prompt", source, line)
    if isinstance(raw, str):
        return (Message("user", required_str(record, "prompt", source, line)),)
    if not isinstance(raw, list):
        raise DataError(
            f"must be a string or an array of messages, got {json_type(raw)}", source, line, "prompt"
        )
    return check_prompt(parse_messages(raw, "prompt", source, line), "prompt", source, line)


def _reply(record: dict[str, Any], key: str, source: str, line: int, paired: bool = True) -> Message:
    """A TRL reply: a string, or a list holding one assistant message (the conversational form)."""
    if isinstance(record.get(key), list):
        return reply_from_list(record, key, source, line, paired)
    return reply_text(record, key, source, line, paired)


def trl_explicit(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    prompt = _prompt(record, source, line)
    chosen = _reply(record, "chosen", source, line)
    rejected = _reply(record, "rejected", source, line)
    check_pair(chosen, rejected, ("chosen", "rejected"), source, line)
    tools = parse_tools(record.get("tools"), source, line, "tools")
    return PreferenceRecord(prompt, chosen, rejected, source=source, line=line, tools=tools)


def trl_unpaired(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    prompt = _prompt(record, source, line)
    completion = _reply(record, "completion", source, line, paired=False)
    label = parse_label(record, "label", source, line)
    tools = parse_tools(record.get("tools"), source, line, "tools")
    return PreferenceRecord(prompt, completion, None, label, source, line, tools)
