"""LLaMA-Factory preference records: ShareGPT pairs (``dpo_en_demo``), KTO (``kto_en_demo``), Alpaca pairs.

* ``sharegpt_dpo``: ``conversations`` (the prompt turns, ``from``/``value`` or ``role``/``content``)
  + ``chosen`` and ``rejected`` as one turn object each; optional ``system`` and ``tools``.
* ``sharegpt_kto``: ``messages`` (or ``conversations``) whose last turn is the assistant's reply,
  + a boolean ``label`` (or ``kto_tag``): true = desirable.
* ``alpaca_dpo``: ``instruction`` [+ ``input``] + ``chosen`` and ``rejected`` strings; optional
  ``system`` and ``history``, read exactly as SFT Alpaca records are.

A catalog entry (``dataset_info.json#dpo_en_demo``) renames the columns and the ShareGPT tags through
the ``FormatSpec``, as for SFT data.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.alpaca import alpaca_to_ir
from tuneforge.data.formats.common import FormatSpec, parse_tools
from tuneforge.data.preference.common import (
    check_pair,
    check_prompt,
    empty_reply,
    parse_label,
    parse_messages,
    reply_object,
    reply_text,
    required,
    system_prefix,
)
from tuneforge.data.preference.ir import PreferenceRecord

_ALPACA_KEYS = ("instruction", "input", "system", "history")


def _messages_key(record: dict[str, Any], spec: FormatSpec, default: str) -> str:
    if "messages" in spec.columns:
        return spec.columns["messages"]
    other = "messages" if default == "conversations" else "conversations"
    return other if other in record and default not in record else default


def sharegpt_dpo(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    key = _messages_key(record, spec, "conversations")
    tags = spec.tags or None
    system = system_prefix(record, spec.col("system"), source, line)
    turns = parse_messages(required(record, key, source, line), key, source, line, tags)
    prompt = check_prompt(system + turns, key, source, line)
    chosen_key, rejected_key = spec.col("chosen"), spec.col("rejected")
    chosen = reply_object(record, chosen_key, source, line, tags)
    rejected = reply_object(record, rejected_key, source, line, tags)
    check_pair(chosen, rejected, (chosen_key, rejected_key), source, line)
    tools = parse_tools(record.get(spec.col("tools")), source, line, spec.col("tools"))
    return PreferenceRecord(prompt, chosen, rejected, source=source, line=line, tools=tools)


def _label_key(record: dict[str, Any], spec: FormatSpec) -> str:
    if "kto_tag" in spec.columns:
        return spec.columns["kto_tag"]
    return "kto_tag" if "kto_tag" in record else "label"


def sharegpt_kto(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    key = _messages_key(record, spec, "messages")
    raw = required(record, key, source, line)
    last = f"{key}[{len(raw) - 1}]" if isinstance(raw, list) else key
    try:
        turns = parse_messages(raw, key, source, line, spec.tags or None)
    except DataError as err:
        if err.kind == "empty_turn" and err.field.startswith(last + "."):
            raise empty_reply(err.field, source, line, paired=False) from None
        raise
    if turns[-1].role != "assistant":
        raise DataError(
            f"the last turn must be the assistant reply that the label grades, got {turns[-1].role!r}",
            source,
            line,
            last,
        )
    label = parse_label(record, _label_key(record, spec), source, line)
    system = system_prefix(record, spec.col("system"), source, line)
    prompt = check_prompt(system + turns[:-1], key, source, line)
    tools = parse_tools(record.get(spec.col("tools")), source, line, spec.col("tools"))
    return PreferenceRecord(prompt, turns[-1], None, label, source, line, tools)


def alpaca_dpo(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> PreferenceRecord:
    chosen_key, rejected_key = spec.col("chosen"), spec.col("rejected")
    chosen = reply_text(record, chosen_key, source, line)
    rejected = reply_text(record, rejected_key, source, line)
    check_pair(chosen, rejected, (chosen_key, rejected_key), source, line)
    columns = {k: spec.col(k) for k in _ALPACA_KEYS} | {"output": chosen_key}
    conv = alpaca_to_ir(record, FormatSpec("alpaca", columns), source, line)
    return PreferenceRecord(conv.messages[:-1], chosen, rejected, source=source, line=line)
