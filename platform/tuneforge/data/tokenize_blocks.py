"""A batch of records -> fixed-length model rows (packed or padded) plus counters (pure, no Ray).

``tokenize_and_block`` is what each Ray Data ``map_batches`` task runs: every record is encoded
with its loss mask (``encode_record``), the examples are packed into ``max_seq_len`` blocks (or
padded one per row), and the batch's counters (records kept, dropped, truncated, too long,
chunked) ride on its first output row, so the written Parquet files can be summed without a second
pass. Every output row also carries ``source_tokens``: its trained tokens (label != -100) per
source of the split (index = source index), which lets the mix's order and shares be measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from tuneforge.data.encode import encode_record
from tuneforge.data.ir import Conversation
from tuneforge.data.packing import IGNORE_INDEX, pack_examples, pad_examples

MODEL_COLUMNS_PACKED = ["input_ids", "labels", "position_ids"]
MODEL_COLUMNS_PADDED = ["input_ids", "labels", "position_ids", "attention_mask"]
#: per packed row, trained tokens (label != -100) from each source of the split (index = source index)
SOURCE_TOKENS = "source_tokens"
#: per-batch totals, on each batch's first row (0 on the others)
COUNTERS = ("n_docs", "n_dropped", "n_truncated", "n_too_long", "n_chunked")


@dataclass(frozen=True)
class EncodeSettings:
    """Everything besides the tokenizer that decides a record's tokens and a batch's blocks."""

    template: str
    max_seq_len: int
    packing: bool
    train_on_prompt: bool = False
    last_turn_only: bool = False
    truncation: str = "truncate"

    def key(self) -> list[Any]:
        """The settings as the cache key lists them (template, length, packing, masks, truncation)."""
        return list(astuple(self))

    @property
    def columns(self) -> list[str]:
        return MODEL_COLUMNS_PACKED if self.packing else MODEL_COLUMNS_PADDED


def tokenize_and_block(
    convs: Sequence[Conversation],
    sources: Sequence[int] | None,
    *,
    tokenizer: Any,
    settings: EncodeSettings,
    n_sources: int = 1,
) -> dict[str, np.ndarray]:
    """Records (with their source indices; None: all source 0) -> model rows + counters."""
    s = settings
    examples: list[dict[str, list[int]]] = []
    example_sources: list[int] = []
    counts = dict.fromkeys(COUNTERS, 0)
    for i, conv in enumerate(convs):
        result = encode_record(
            conv,
            tokenizer,
            s.template,
            s.max_seq_len,
            train_on_prompt=s.train_on_prompt,
            truncation=s.truncation,
            last_turn_only=s.last_turn_only,
        )
        examples += result.examples
        example_sources += [int(sources[i]) if sources is not None else 0] * len(result.examples)
        counts["n_docs"] += 1 if result.examples else 0
        counts["n_dropped"] += 0 if result.examples else 1
        counts["n_truncated"] += result.status == "truncated"
        counts["n_too_long"] += result.status == "dropped_too_long"
        counts["n_chunked"] += result.status == "chunked"
    pad_id = tokenizer.pad_token_id
    rows = (
        pack_examples(examples, s.max_seq_len, pad_id)
        if s.packing
        else pad_examples(examples, s.max_seq_len, pad_id)
    )
    out: dict[str, np.ndarray] = {
        c: np.asarray([r[c] for r in rows], dtype=np.int64).reshape(len(rows), s.max_seq_len)
        for c in s.columns
    }
    real = [
        sum(1 for t in r["input_ids"] if t != pad_id) if s.packing else sum(r["attention_mask"]) for r in rows
    ]
    out["n_real"] = np.asarray(real, dtype=np.int64)
    out[SOURCE_TOKENS] = source_tokens(out["labels"], examples, example_sources, n_sources, s.packing)
    for name, value in counts.items():  # batch totals ride on the batch's first row
        out[name] = np.zeros(len(rows), dtype=np.int64)
        if rows:
            out[name][0] = value
    return out


def source_tokens(
    labels: np.ndarray,
    examples: list[dict[str, list[int]]],
    sources: list[int],
    n_sources: int,
    packing: bool,
) -> np.ndarray:
    """Per output row, how many trained tokens (label != -100) came from each source.

    For packed rows the examples are packed a second time with each token replaced by its source
    index (pad -1): ``pack_examples`` places examples by length alone, so that layout is exactly the
    real rows' layout, and the real labels say which of those tokens are trained.
    """
    rows, max_seq_len = labels.shape
    out = np.zeros((rows, max(1, n_sources)), dtype=np.int64)
    if not rows:
        return out
    trained = labels != IGNORE_INDEX
    if packing:
        tagged = [
            {"input_ids": [s] * len(e["input_ids"]), "labels": e["labels"]}
            for e, s in zip(examples, sources, strict=True)
        ]
        marks = np.asarray([b["input_ids"] for b in pack_examples(tagged, max_seq_len, -1)], dtype=np.int64)
    else:
        marks = np.repeat(np.asarray(sources, dtype=np.int64)[:, None], max_seq_len, axis=1)
    if marks.shape != labels.shape:
        raise AssertionError("source layout differs from the packed rows")
    for s in range(out.shape[1]):
        out[:, s] = ((marks == s) & trained).sum(axis=1)
    return out


__all__ = [
    "COUNTERS",
    "MODEL_COLUMNS_PACKED",
    "MODEL_COLUMNS_PADDED",
    "SOURCE_TOKENS",
    "EncodeSettings",
    "source_tokens",
    "tokenize_and_block",
]
