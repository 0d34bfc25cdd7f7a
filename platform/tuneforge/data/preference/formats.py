"""Preference formats: detect a record's layout from its keys and convert it to a ``PreferenceRecord``.

Detection is per file from the first record, like the SFT formats (``data/formats``), and every
later record must match. ``detect_preference_format`` returns None for a record that is not
preference data at all, which is how ``is_preference_file`` tells SFT files from preference files.
Adding a format is one converter plus one entry in ``PREFERENCE_FORMATS`` and one rule in
``detect_preference_format``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import FormatSpec, format_mismatch, json_type
from tuneforge.data.preference.explicit import openai_preference, stack_exchange, trl_explicit, trl_unpaired
from tuneforge.data.preference.implicit import hh, trl_implicit
from tuneforge.data.preference.ir import PreferenceRecord
from tuneforge.data.preference.llamafactory import alpaca_dpo, sharegpt_dpo, sharegpt_kto

Converter = Callable[[dict[str, Any], FormatSpec, str, int], PreferenceRecord]

#: format -> (the keys that identify it, its converter), in detection order
PREFERENCE_FORMATS: dict[str, tuple[str, Converter]] = {
    "openai_preference": ("'input' + 'preferred_output' + 'non_preferred_output'", openai_preference),
    "stack_exchange": ("'question' + 'response_j' + 'response_k'", stack_exchange),
    "sharegpt_dpo": ("'conversations' + 'chosen' + 'rejected'", sharegpt_dpo),
    "sharegpt_kto": ("'messages' + boolean 'label' (or 'kto_tag')", sharegpt_kto),
    "alpaca_dpo": ("'instruction' + 'chosen' + 'rejected'", alpaca_dpo),
    "trl_explicit": ("'prompt' + 'chosen' + 'rejected'", trl_explicit),
    "trl_unpaired": ("'prompt' + 'completion' + 'label'", trl_unpaired),
    "hh": ("'chosen' + 'rejected' transcript strings", hh),
    "trl_implicit": ("'chosen' + 'rejected' message lists", trl_implicit),
}
PREFERENCE_FORMAT_NAMES: tuple[str, ...] = tuple(PREFERENCE_FORMATS)


def detect_preference_format(record: Any) -> str | None:
    """The preference format of one record from its keys, or None if it is not preference data.

    A KTO record is recognised by a *boolean* ``label`` (or a ``kto_tag``) so that an SFT chat
    record carrying some other ``label`` (a class name, say) is not mistaken for one.
    """
    if not isinstance(record, dict):
        return None
    keys = record.keys()
    pair = "chosen" in keys and "rejected" in keys
    dialogue = "conversations" in keys or "messages" in keys
    if "preferred_output" in keys or "non_preferred_output" in keys:
        return "openai_preference"
    if "response_j" in keys or "response_k" in keys:
        return "stack_exchange"
    if pair and dialogue:
        return "sharegpt_dpo"
    if dialogue and ("kto_tag" in keys or isinstance(record.get("label"), bool)):
        return "sharegpt_kto"
    if pair and "instruction" in keys:
        return "alpaca_dpo"
    if pair and "prompt" in keys:
        return "trl_explicit"
    if "prompt" in keys and "completion" in keys and "label" in keys:
        return "trl_unpaired"
    if pair:
        return "hh" if isinstance(record["chosen"], str) else "trl_implicit"
    return None


def unknown_format(record: dict[str, Any], source: str, line: int) -> DataError:
    keys = ", ".join(sorted(record)) or "none"
    known = "; ".join(f"{name} ({k})" for name, (k, _) in PREFERENCE_FORMATS.items())
    return DataError(
        f"cannot tell the record's preference format from its keys ({keys}); known formats: {known}",
        source,
        line,
        kind="unknown_format",
    )


def to_preference(
    record: Any, spec: FormatSpec, source: str, line: int, *, explicit: bool = False
) -> PreferenceRecord:
    """Convert one raw record of format ``spec.name`` into a validated ``PreferenceRecord``.

    ``explicit``: the user named the format; when the record then fails and its keys point to a
    different format, the message says so (a wrong ``--format`` is the likely cause).
    """
    if spec.name not in PREFERENCE_FORMATS:
        known = ", ".join(PREFERENCE_FORMATS)
        raise ValueError(f"unknown preference format {spec.name!r}; expected one of {known}")
    if not isinstance(record, dict):
        raise DataError(f"a record must be a JSON object, got {json_type(record)}", source, line)
    try:
        return PREFERENCE_FORMATS[spec.name][1](record, spec, source, line)
    except DataError as err:
        guess = detect_preference_format(record) if explicit and not spec.columns else None
        mismatch = format_mismatch(err, spec.name, guess)
        if mismatch is not None:
            raise mismatch from None
        raise
