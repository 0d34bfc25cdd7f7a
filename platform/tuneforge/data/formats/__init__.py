"""Record formats: detect a record's layout and convert it to the chat IR, one module per format.

Adding a format is one converter ``(record, FormatSpec, source, line) -> Conversation`` plus one
entry in ``CONVERTERS`` and, if it can be recognised from its keys, one in ``FORMAT_KEYS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.alpaca import alpaca_to_ir
from tuneforge.data.formats.common import FormatSpec, format_mismatch, json_type
from tuneforge.data.formats.openai import openai_to_ir
from tuneforge.data.formats.sharegpt import sharegpt_to_ir
from tuneforge.data.formats.text import text_to_ir
from tuneforge.data.ir import Conversation

#: Formats ``detect_format`` recognises, with the keys that identify them (checked in this order).
FORMAT_KEYS: dict[str, str] = {
    "openai": "'messages'",
    "alpaca": "'instruction' + 'output'",
    "sharegpt": "'conversations'",
    "text": "'text'",
}
CONVERTERS: dict[str, Callable[[dict[str, Any], FormatSpec, str, int], Conversation]] = {
    "openai": openai_to_ir,
    "alpaca": alpaca_to_ir,
    "sharegpt": sharegpt_to_ir,
    "text": text_to_ir,
}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(CONVERTERS)


def detect_format(record: dict[str, Any], *, source: str = "", line: int = 0) -> str:
    """Name the format of one record from its keys: openai, alpaca, sharegpt or text.

    Alpaca is recognised by ``instruction`` alone, so a record that lacks ``output`` gets the precise
    "output: missing required field" from ``record_to_ir`` instead of a vaguer "unknown format".
    """
    if "messages" in record:
        return "openai"
    if "instruction" in record:
        return "alpaca"
    if "conversations" in record:
        return "sharegpt"
    if "text" in record:
        return "text"
    keys = ", ".join(sorted(record)) or "none"
    known = "; ".join(f"{name} ({keys_})" for name, keys_ in FORMAT_KEYS.items())
    raise DataError(
        f"cannot tell the record's format from its keys ({keys}); known formats: {known}",
        source,
        line,
        kind="unknown_format",
    )


def check_trainable(conv: Conversation) -> Conversation:
    """A record with nothing to learn from is an error (it would only add padding to batches)."""
    if conv.mode == "pretrain":
        return conv
    if not any(m.role == "assistant" for m in conv.messages):
        raise DataError(
            "no assistant message; a training record needs at least one",
            conv.source,
            conv.line,
            "messages",
            kind="no_trainable_turn",
        )
    if not any(m.trained for m in conv.messages):
        raise DataError(
            "every assistant message has weight 0; nothing to train on",
            conv.source,
            conv.line,
            "messages",
            kind="no_trainable_turn",
        )
    return conv


def record_to_ir(
    record: dict[str, Any], fmt: str | FormatSpec, source: str, line: int, *, explicit: bool = False
) -> Conversation:
    """Convert one raw record of format ``fmt`` into a validated ``Conversation``.

    ``explicit`` says the user named the format: when the record then fails and its keys point to a
    different format, the message says so (a wrong ``format:`` is the likely cause).
    """
    spec = fmt if isinstance(fmt, FormatSpec) else FormatSpec(fmt)
    if spec.name not in CONVERTERS:
        raise ValueError(f"unknown format {spec.name!r}; expected one of {', '.join(CONVERTERS)}")
    if not isinstance(record, dict):
        raise DataError(f"a record must be a JSON object, got {json_type(record)}", source, line)
    try:
        conv = check_trainable(CONVERTERS[spec.name](record, spec, source, line))
    except DataError as err:
        if explicit and not spec.columns:
            try:
                guess = detect_format(record)
            except DataError:
                guess = None
            mismatch = format_mismatch(err, spec.name, guess)
            if mismatch is not None:
                raise mismatch from None
        raise
    record_id = record.get("id")
    if isinstance(record_id, str | int) and not isinstance(record_id, bool):
        conv = replace(conv, metadata={"id": record_id})  # kept for tracing a record back to its source
    return conv


__all__ = [
    "CONVERTERS",
    "FORMAT_KEYS",
    "SUPPORTED_FORMATS",
    "FormatSpec",
    "check_trainable",
    "detect_format",
    "json_type",
    "record_to_ir",
]
