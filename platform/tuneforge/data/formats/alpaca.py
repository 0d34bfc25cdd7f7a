"""Alpaca records: ``instruction`` [+ ``input``] -> user, ``output`` -> assistant.

Optional ``system`` becomes a leading system message, and ``history`` (a list of
``[user, assistant]`` pairs, LLaMA-Factory's convention) becomes the turns before the instruction.
History answers are trained like the final one (LLaMA-Factory does the same); ``last_turn_only``
in the template options trains only the final answer.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import FormatSpec, json_type, nonempty_answer, optional_str, required_str
from tuneforge.data.ir import Conversation, Message


def alpaca_to_ir(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> Conversation:
    """instruction [+ "\\n\\n" + input] -> user, output -> assistant, optional system and history first."""
    instruction = required_str(record, spec.col("instruction"), source, line)
    output = required_str(record, spec.col("output"), source, line)
    extra_input = optional_str(record, spec.col("input"), source, line)
    system = optional_str(record, spec.col("system"), source, line)
    messages = [Message("system", system)] if system else []
    messages += _history(record.get(spec.col("history")), spec.col("history"), source, line)
    messages.append(Message("user", f"{instruction}\n\n{extra_input}" if extra_input else instruction))
    messages.append(Message("assistant", output))
    return Conversation(messages=tuple(messages), source=source, line=line, mode="instruct")


def _history(raw: Any, field: str, source: str, line: int) -> list[Message]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise DataError(
            f"must be an array of [user, assistant] pairs, got {json_type(raw)}", source, line, field
        )
    out: list[Message] = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise DataError("must be a [user, assistant] pair", source, line, f"{field}[{i}]")
        for j, (role, text) in enumerate(zip(("user", "assistant"), pair, strict=True)):
            if not isinstance(text, str):
                raise DataError(
                    f"must be a string, got {json_type(text)}", source, line, f"{field}[{i}][{j}]"
                )
            if role == "assistant":
                nonempty_answer(text, source, line, f"{field}[{i}][{j}]")
            out.append(Message(role, text))
    return out
