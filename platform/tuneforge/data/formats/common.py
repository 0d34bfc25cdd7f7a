"""Helpers shared by the per-format converters: JSON type names, string fields, tool-call parsing.

Error messages speak JSON (``got null``, ``got number``) because that is what the user sees in the
file, and name the field by its path in the record (``conversations[3].value``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tuneforge.data.errors import DataError


@dataclass(frozen=True)
class FormatSpec:
    """A record layout plus optional renames (from a LLaMA-Factory ``dataset_info.json`` entry).

    ``columns`` maps our logical keys to the record's keys (alpaca: instruction/input/output/system/
    history; sharegpt: conversations/system/tools; text: text); ``tags`` renames ShareGPT's message
    keys and role names (role_tag, content_tag, user_tag, assistant_tag, observation_tag,
    function_tag, system_tag).
    """

    name: str
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def col(self, key: str) -> str:
        return self.columns.get(key, key)

    def tag(self, key: str, default: str) -> str:
        return self.tags.get(key, default)


def format_mismatch(err: DataError, name: str, guess: str | None) -> DataError | None:
    """``err`` restated when a record fails its *set* format but its keys look like another one.

    Shared by the SFT and preference readers: a wrong ``format:`` is the likelier mistake than a
    bad record, so the message says which format the keys suggest. None: no better guess.
    """
    if guess is None or guess == name:
        return None
    return DataError(
        f"{err.message} (format is set to {name!r} but the record's keys look like {guess!r}; "
        "fix `format:` or use auto)",
        err.file,
        err.line,
        err.field,
        kind="format_mismatch",
    )


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages written in the user's terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def optional_str(record: dict[str, Any], key: str, source: str, line: int, field_name: str = "") -> str:
    """A string field that may be absent or null (both read as "")."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {json_type(value)}", source, line, field_name or key)
    return value


def required_str(record: dict[str, Any], key: str, source: str, line: int, field_name: str = "") -> str:
    """A string field that must be present and not blank."""
    name = field_name or key
    if key not in record:
        raise DataError("missing required field", source, line, name)
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {json_type(value)}", source, line, name)
    if not value.strip():
        raise DataError("must not be empty", source, line, name)
    return value


def nonempty_answer(text: str, source: str, line: int, field_name: str, hint: str = "") -> str:
    """A trained assistant turn must say something: an empty one would train only its end token."""
    if not text.strip():
        raise DataError(
            f"empty assistant content: the turn would train only its end-of-turn token; "
            f"write the answer or remove the turn{hint}",
            source,
            line,
            field_name,
            kind="empty_turn",
        )
    return text


def parse_arguments(raw: Any, source: str, line: int, field_name: str) -> Any:
    """Tool-call arguments: a JSON object, or a string holding one (OpenAI's wire form) -> the object.

    A string that is not JSON is kept as a string: some datasets store free-text arguments, and the
    templates render them as given.
    """
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    if raw is None or isinstance(raw, dict | list):
        return {} if raw is None else raw
    raise DataError(f"must be an object or a JSON string, got {json_type(raw)}", source, line, field_name)


def parse_tools(raw: Any, source: str, line: int, field_name: str) -> tuple[dict[str, Any], ...] | None:
    """The tools offered to the model: an array of objects, or a string holding one (glaive data)."""
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg}", source, line, field_name) from None
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise DataError(f"must be an array of tool objects, got {json_type(raw)}", source, line, field_name)
    return tuple(raw) or None
