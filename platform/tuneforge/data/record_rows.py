"""The rows the tokenizing pipeline carries: one per input file, then one per record copy (pure, no Ray).

``file_items`` turns a ``DataPlan`` into one row per input file; ``file_rows`` (one call per file,
in a Ray Data ``flat_map`` task) reads that file, keeps exactly the records the driver's plan kept
for one split (the planned drop keys, the content-hash split, the mix's ``repeat_count`` copies) and
emits one *record row* per copy. A record row holds what tokenizing needs of a ``Conversation`` as
flat, Arrow-friendly columns, so the rows between the two Ray stages (and through the train
split's shuffle) are plain strings and integer lists, never a serialized IR to parse again:

==========  ===============  ======================================================================
column      Arrow type       value
==========  ===============  ======================================================================
``mode``    string           ``Conversation.mode``
``roles``   list<string>     each message's role
``contents`` list<string>    each message's content
``train``   list<int64>      each message's ``train``: -1 None (the role default), 0 False, 1 True
``tools``   string           tool use only (``tools``, per-message ``tool_calls`` and ``name``) as
                             JSON; "" for a record without any (the common case: nothing to parse)
``src``     int64            the source index (for the per-source token counts)
==========  ===============  ======================================================================

``row_conversations`` turns a batch of those columns back into the ``Conversation`` objects the
encoder takes; the fields tokenizing ignores (source, line, metadata) are not carried.

A task checks the bytes it read against the plan's sha256 (``SourcePlan.sha256``), so a file that
changed after the plan (whose drop keys and cache key describe the old content) fails loudly
instead of training on rows the cache key does not describe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.files import read_bytes, sha256_hex
from tuneforge.data.formats import FormatSpec
from tuneforge.data.ir import Conversation, Message
from tuneforge.data.mixing import repeat_count, unit_interval
from tuneforge.data.plan import DataPlan, keep_record
from tuneforge.data.readers import RecordStream

#: the columns of a record row, in order
ROW_COLUMNS = ("mode", "roles", "contents", "train", "tools", "src")
_TRAIN_CODE = {None: -1, False: 0, True: 1}
_TRAIN_FLAG = {-1: None, 0: False, 1: True}


@dataclass(frozen=True)
class SplitRules:
    """What decides which records of a file feed split ``target``, and in how many copies."""

    target: str  # "train" or "eval"
    drop: frozenset[tuple[str, int, int]]
    factors: Mapping[int, float]  # train source index -> mix factor
    eval_fraction: float
    seed: int
    has_eval_files: bool
    on_bad: str = "error"

    @classmethod
    def of(
        cls,
        plan: DataPlan,
        target: str,
        *,
        eval_fraction: float,
        seed: int,
        has_eval_files: bool,
        on_bad: str,
    ) -> SplitRules:
        return cls(
            target=target,
            drop=frozenset(plan.drop),
            factors={sp.index: sp.factor for sp in plan.sources if sp.split == "train"},
            eval_fraction=eval_fraction,
            seed=seed,
            has_eval_files=has_eval_files,
            on_bad=on_bad,
        )


def file_items(plan: DataPlan, group: str) -> list[dict[str, Any]]:
    """One row per input file of ``group`` ("train"/"eval" files), in config order.

    ``fmt`` is exactly what the driver parsed the file with ("auto", a format name, or a catalog
    ``FormatSpec`` as a dict), so a task keeps exactly the driver's records (the planned drop keys
    are ordinals of those records); ``sha256`` is the plan's digest of the bytes it read.
    """
    items = []
    for sp in plan.sources:
        if sp.split != group:
            continue
        fmt = json.dumps(asdict(sp.fmt_arg) if isinstance(sp.fmt_arg, FormatSpec) else sp.fmt_arg)
        items.append(
            {"split": sp.split, "index": sp.index, "path": sp.path, "source": sp.source, "fmt": fmt,
             "sha256": sp.sha256}
        )  # fmt: skip
    return items


def file_rows(item: Mapping[str, Any], rules: SplitRules) -> list[dict[str, Any]]:
    """One input file -> the record rows of split ``rules.target`` (one row per mixed copy)."""
    fmt_arg = json.loads(item["fmt"])
    fmt = FormatSpec(**fmt_arg) if isinstance(fmt_arg, dict) else fmt_arg
    data = read_bytes(item["path"])
    expected = item.get("sha256")
    if expected and sha256_hex(data) != expected:
        raise DataError(
            "the file changed after the data plan read it (sha256 differs); rerun to plan the new content",
            item["source"],
            kind="file",
        )
    split, index = item["split"], item["index"]
    out: list[dict[str, Any]] = []
    for ordinal, conv in enumerate(RecordStream(data, item["path"], fmt, on_bad=rules.on_bad)):
        if (split, index, ordinal) in rules.drop:
            continue
        if keep_record(conv, split, rules.eval_fraction, rules.seed, rules.has_eval_files) != rules.target:
            continue
        copies = 1
        if rules.target == "train":
            copies = repeat_count(conv.content_hash(), index, rules.factors.get(index, 1.0), rules.seed)
        row = record_row(conv, index)
        out.extend([row] * copies)
    return out


def record_row(conv: Conversation, src: int = 0) -> dict[str, Any]:
    """A conversation as one record row (the columns of ``ROW_COLUMNS``)."""
    tools: dict[str, Any] = {}
    if conv.tools is not None:
        tools["tools"] = [dict(t) for t in conv.tools]
    calls = {
        str(i): [dict(c) for c in m.tool_calls]
        for i, m in enumerate(conv.messages)
        if m.tool_calls is not None
    }
    names = {str(i): m.name for i, m in enumerate(conv.messages) if m.name is not None}
    if calls:
        tools["calls"] = calls
    if names:
        tools["names"] = names
    return {
        "mode": conv.mode,
        "roles": [m.role for m in conv.messages],
        "contents": [m.content for m in conv.messages],
        "train": [_TRAIN_CODE[m.train] for m in conv.messages],
        "tools": json.dumps(tools, ensure_ascii=False) if tools else "",
        "src": src,
    }


def row_conversation(
    mode: str, roles: Sequence[str], contents: Sequence[str], train: Sequence[int], tools: str
) -> Conversation:
    """Inverse of ``record_row`` (for the fields it carries)."""
    extra = json.loads(tools) if tools else {}
    calls, names = extra.get("calls", {}), extra.get("names", {})
    messages = tuple(
        Message(role, content, _TRAIN_FLAG[int(flag)], calls.get(str(i)), names.get(str(i)))
        for i, (role, content, flag) in enumerate(zip(roles, contents, train, strict=True))
    )
    offered = extra.get("tools")
    return Conversation(messages, mode=mode, tools=None if offered is None else tuple(offered))


def row_conversations(columns: Mapping[str, Sequence[Any]]) -> list[Conversation]:
    """A batch of record rows (column name -> Python values) back to conversations, in row order."""
    return [
        row_conversation(*fields)
        for fields in zip(
            columns["mode"],
            columns["roles"],
            columns["contents"],
            columns["train"],
            columns["tools"],
            strict=True,
        )
    ]


def shuffle_seed(seed: int) -> int:
    """The seed of the global train-order shuffle, derived from ``trainer.seed``.

    Hashed so that it is a valid NumPy seed for any configured seed (negative ones too; Ray adds
    the task index to it) and independent of the other uses of the same seed.
    """
    return int(unit_interval(seed, "train-order") * 2**31)


__all__ = [
    "ROW_COLUMNS",
    "SplitRules",
    "file_items",
    "file_rows",
    "record_row",
    "row_conversation",
    "row_conversations",
    "shuffle_seed",
]
