"""Readers: OpenAI-chat JSONL and Alpaca (JSON array or JSONL) files -> ``Conversation`` records.

Every problem with the input is a ``DataError`` naming the file, the 1-based line and the field, so
a user can fix the data without reading code. ``.jsonl`` files are streamed line by line; ``.json``
files must hold one JSON array and are read whole (JSON arrays cannot be streamed with the standard
library), with each record's line taken from where its element starts.

The functions are pure (no Ray): Ray Data glue calls ``conversations_from_bytes`` on the output of
``read_binary_files`` and ships ``Conversation.to_dict()`` rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.ir import ROLES, Conversation, Message

#: Formats ``detect_format`` recognises, with the keys that identify them (checked in this order).
FORMAT_KEYS: dict[str, str] = {
    "openai": "'messages'",
    "alpaca": "'instruction' + 'output'",
    "sharegpt": "'conversations'",
    "text": "'text'",
}
#: Formats ``record_to_ir`` can convert today; the others are recognised so the error can say so.
SUPPORTED_FORMATS: tuple[str, ...] = ("alpaca", "openai")

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages written in the user's terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------- raw records


def _records_from_lines(lines: Iterable[bytes], source: str) -> Iterator[tuple[int, Any]]:
    """JSON Lines: one value per non-blank line, numbered from 1."""
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", source, number) from None
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", source, number) from None


def _records_from_json_array(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """A JSON array, element by element, each with the line its element starts on.

    ``raw_decode`` parses one element at a time, so line numbers cost one newline count over the
    text between elements (linear overall) instead of a second parse.
    """
    decoder = json.JSONDecoder()

    def skip_ws(pos: int) -> int:
        match = _JSON_WHITESPACE.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = skip_ws(1 if text.startswith("\ufeff") else 0)
    if not text.startswith("[", pos):
        raise DataError(
            "expected a JSON array of records (for one record per line, name the file .jsonl)",
            source,
            line_of(pos),
        )
    pos = skip_ws(pos + 1)
    line, counted_to = line_of(pos), pos
    if not text.startswith("]", pos):
        while True:
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", source, exc.lineno) from None
            yield line, value
            pos = skip_ws(pos)
            if text.startswith(",", pos):
                pos = skip_ws(pos + 1)
            elif text.startswith("]", pos):
                break
            else:
                raise DataError(
                    "invalid JSON: expected ',' or ']' after an array element", source, line_of(pos)
                )
    if skip_ws(pos + 1) != len(text):
        raise DataError("invalid JSON: extra data after the array", source, line_of(skip_ws(pos + 1)))


def _only_objects(records: Iterable[tuple[int, Any]], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, value in records:
        if not isinstance(value, dict):
            raise DataError(f"a record must be a JSON object, got {_json_type(value)}", source, line)
        yield line, value


def _raw_records_from_bytes(data: bytes, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = _suffix(source)
    if suffix == ".jsonl":
        return _only_objects(_records_from_lines(data.splitlines(), source), source)
    return _only_objects(_records_from_json_array(_decode_whole(data, source), source), source)


def _suffix(source: str) -> str:
    suffix = Path(source).suffix.lower()
    if suffix not in (".jsonl", ".json"):
        raise DataError(
            f"unsupported file extension {suffix or '(none)'!r}; expected .jsonl or .json", source
        )
    return suffix


def _decode_whole(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"not valid UTF-8 ({exc.reason})", source, line) from None


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, record)`` for every record of a ``.jsonl`` or ``.json`` (array) file.

    ``.jsonl`` is streamed (constant memory); blank lines are skipped but still counted.
    """
    source = str(path)
    if _suffix(source) == ".json":
        yield from _raw_records_from_bytes(Path(path).read_bytes(), source)
        return
    with open(path, "rb") as handle:
        yield from _only_objects(_records_from_lines(handle, source), source)


# ---------------------------------------------------------------------------------------------- formats


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
        f"cannot tell the record's format from its keys ({keys}); known formats: {known}", source, line
    )


def record_to_ir(record: dict[str, Any], fmt: str, source: str, line: int) -> Conversation:
    """Convert one raw record of format ``fmt`` into a validated ``Conversation``."""
    if fmt == "openai":
        return _openai_to_ir(record, source, line)
    if fmt == "alpaca":
        return _alpaca_to_ir(record, source, line)
    if fmt in FORMAT_KEYS:
        supported = ", ".join(SUPPORTED_FORMATS)
        raise DataError(f"format {fmt!r} is not supported yet; supported: {supported}", source, line)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMAT_KEYS)}")


def _openai_to_ir(record: dict[str, Any], source: str, line: int) -> Conversation:
    if "messages" not in record:
        raise DataError("missing required field", source, line, "messages")
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else _json_type(raw)
        raise DataError(f"must be a non-empty array of messages, got {got}", source, line, "messages")
    messages = tuple(_openai_message(m, f"messages[{i}]", source, line) for i, m in enumerate(raw))
    if not any(m.role == "assistant" for m in messages):
        raise DataError(
            "no assistant message; a training record needs at least one", source, line, "messages"
        )
    return Conversation(messages=messages, source=source, line=line, mode="chat")


def _openai_message(msg: Any, field: str, source: str, line: int) -> Message:
    if not isinstance(msg, dict):
        raise DataError(f"a message must be an object, got {_json_type(msg)}", source, line, field)
    if "role" not in msg:
        raise DataError("missing required field", source, line, f"{field}.role")
    role = msg["role"]
    if role not in ROLES:
        raise DataError(
            f"unknown role {role!r}; expected one of {', '.join(ROLES)}", source, line, f"{field}.role"
        )
    for key in ("tool_calls", "function_call"):
        if msg.get(key):
            raise DataError(
                "tool calls are not supported yet; drop this record or convert the call to text",
                source,
                line,
                f"{field}.{key}",
            )
    content = _openai_content(msg, f"{field}.content", source, line)
    return Message(
        role=role, content=content, train=_openai_weight(msg, role, f"{field}.weight", source, line)
    )


def _openai_content(msg: dict[str, Any], field: str, source: str, line: int) -> str:
    """A string, or OpenAI's list of ``{"type": "text", "text": ...}`` parts joined without separator."""
    if "content" not in msg:
        raise DataError("missing required field", source, line, field)
    content = msg["content"]
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DataError(
            f"must be a string or an array of text parts, got {_json_type(content)}", source, line, field
        )
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise DataError(
                f"a content part must be an object, got {_json_type(part)}", source, line, f"{field}[{j}]"
            )
        if part.get("type") != "text":
            raise DataError(
                f"unsupported content part type {part.get('type')!r}; only 'text' is supported",
                source,
                line,
                f"{field}[{j}].type",
            )
        if not isinstance(part.get("text"), str):
            got = _json_type(part.get("text"))
            raise DataError(f"must be a string, got {got}", source, line, f"{field}[{j}].text")
        texts.append(part["text"])
    return "".join(texts)


def _openai_weight(msg: dict[str, Any], role: str, field: str, source: str, line: int) -> bool | None:
    """OpenAI's per-assistant-message ``weight`` (0 or 1) -> ``Message.train``; absent -> None (default)."""
    if "weight" not in msg:
        return None
    weight = msg["weight"]
    if role != "assistant":
        raise DataError("only assistant messages take a weight", source, line, field)
    if type(weight) is not int or weight not in (0, 1):
        raise DataError(f"must be 0 or 1, got {json.dumps(weight)}", source, line, field)
    return weight == 1


def _alpaca_to_ir(record: dict[str, Any], source: str, line: int) -> Conversation:
    """instruction [+ "\\n\\n" + input] -> user, output -> assistant, optional system first."""
    instruction = _required_str(record, "instruction", source, line)
    output = _required_str(record, "output", source, line)
    extra_input = _optional_str(record, "input", source, line)
    system = _optional_str(record, "system", source, line)
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", f"{instruction}\n\n{extra_input}" if extra_input else instruction))
    messages.append(Message("assistant", output))
    return Conversation(messages=tuple(messages), source=source, line=line, mode="instruct")


def _required_str(record: dict[str, Any], key: str, source: str, line: int) -> str:
    if key not in record:
        raise DataError("missing required field", source, line, key)
    value = _optional_str(record, key, source, line)
    if not value.strip():
        raise DataError("must not be empty", source, line, key)
    return value


def _optional_str(record: dict[str, Any], key: str, source: str, line: int) -> str:
    """A string field that may be absent or null (both read as "")."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {_json_type(value)}", source, line, key)
    return value


# ---------------------------------------------------------------------------------------------- files


def _check_fmt(fmt: str) -> None:
    if fmt != "auto" and fmt not in SUPPORTED_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected auto, {', '.join(SUPPORTED_FORMATS)}")


def _conversations(
    records: Iterable[tuple[int, dict[str, Any]]], source: str, fmt: str
) -> Iterator[Conversation]:
    """With fmt="auto" the first record fixes the file's format and every later record must match it."""
    file_fmt = None if fmt == "auto" else fmt
    for line, record in records:
        if file_fmt is None:
            file_fmt = detect_format(record, source=source, line=line)
        elif fmt == "auto" and (found := detect_format(record, source=source, line=line)) != file_fmt:
            raise DataError(
                f"record is in {found!r} format but the file's first record is {file_fmt!r}; "
                "one file must hold one format",
                source,
                line,
            )
        yield record_to_ir(record, file_fmt, source, line)


def read_conversations(path: str | Path, fmt: str = "auto") -> Iterator[Conversation]:
    """Stream a file's records as ``Conversation`` objects (``fmt``: auto, openai or alpaca)."""
    _check_fmt(fmt)
    return _conversations(iter_raw_records(path), str(path), fmt)


def conversations_from_bytes(data: bytes, path: str, fmt: str = "auto") -> list[Conversation]:
    """``read_conversations`` for a file already in memory (Ray Data's ``read_binary_files`` rows)."""
    _check_fmt(fmt)
    return list(_conversations(_raw_records_from_bytes(data, path), path, fmt))
