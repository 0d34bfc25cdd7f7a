"""Preference records as flat, Arrow-friendly rows (what crosses Ray Data stages), and back.

Like the SFT record rows (``data/record_rows.py``, whose prompt columns these reuse), the row holds
plain strings and lists, never a serialized IR: every column has one Arrow type in every batch
(no all-null columns whose type Ray cannot unify across blocks).

==================  ============  =========================================================
column              Arrow type    value
==================  ============  =========================================================
``prompt_roles``    list<string>  each prompt message's role
``prompt_contents`` list<string>  each prompt message's content
``prompt_train``    list<int64>   each prompt message's ``train`` (-1 None, 0 False, 1 True)
``tools``           string        tool use (offered tools, prompt tool calls/names, reply tool
                                  calls) as JSON; "" for a record without any
``chosen``          string        the chosen (unpaired: the only) reply's content
``rejected``        string        the rejected reply's content; "" for an unpaired record
``label``           int64         -1 paired, 1 desirable, 0 undesirable (unpaired)
``source``          string        the file the record came from
``line``            int64         its line (or row) in that file
==================  ============  =========================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tuneforge.data.ir import Conversation, Message
from tuneforge.data.preference.ir import PreferenceRecord
from tuneforge.data.record_rows import record_row, row_conversation

PREFERENCE_ROW_COLUMNS: tuple[str, ...] = (
    "prompt_roles", "prompt_contents", "prompt_train", "tools",
    "chosen", "rejected", "label", "source", "line",
)  # fmt: skip


def record_to_row(rec: PreferenceRecord) -> dict[str, Any]:
    """One record as a row of ``PREFERENCE_ROW_COLUMNS``; ``row_to_record`` inverts it exactly."""
    assert rec.chosen is not None  # PreferenceRecord.__post_init__
    prompt = record_row(Conversation(rec.prompt, tools=rec.tools))
    extra: dict[str, Any] = json.loads(prompt["tools"]) if prompt["tools"] else {}
    for key, reply in (("chosen_calls", rec.chosen), ("rejected_calls", rec.rejected)):
        if reply is not None and reply.tool_calls is not None:
            extra[key] = [dict(c) for c in reply.tool_calls]
    return {
        "prompt_roles": prompt["roles"],
        "prompt_contents": prompt["contents"],
        "prompt_train": prompt["train"],
        "tools": json.dumps(extra, ensure_ascii=False) if extra else "",
        "chosen": rec.chosen.content,
        "rejected": "" if rec.rejected is None else rec.rejected.content,
        "label": -1 if rec.label is None else int(rec.label),
        "source": rec.source,
        "line": rec.line,
    }


def row_to_record(row: Mapping[str, Any]) -> PreferenceRecord:
    """Inverse of ``record_to_row`` (Arrow hands back lists and ints, or NumPy arrays of them)."""
    extra: dict[str, Any] = json.loads(row["tools"]) if row["tools"] else {}
    chosen_calls, rejected_calls = extra.pop("chosen_calls", None), extra.pop("rejected_calls", None)
    prompt = row_conversation(
        "chat",
        [str(r) for r in row["prompt_roles"]],
        [str(c) for c in row["prompt_contents"]],
        [int(t) for t in row["prompt_train"]],
        json.dumps(extra) if extra else "",
    )
    label = int(row["label"])
    chosen = Message("assistant", str(row["chosen"]), tool_calls=_calls(chosen_calls))
    rejected = None
    if label == -1:
        rejected = Message("assistant", str(row["rejected"]), tool_calls=_calls(rejected_calls))
    return PreferenceRecord(
        prompt.messages, chosen, rejected, None if label == -1 else bool(label), str(row["source"]),
        int(row["line"]), prompt.tools,
    )  # fmt: skip


def _calls(raw: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...] | None:
    return None if raw is None else tuple(raw)


def rows_to_records(columns: Mapping[str, Sequence[Any]]) -> list[PreferenceRecord]:
    """A batch of rows (column name -> values, as ``map_batches`` hands them over) to records, in order."""
    n = len(columns["label"])
    return [row_to_record({c: columns[c][i] for c in PREFERENCE_ROW_COLUMNS}) for i in range(n)]
