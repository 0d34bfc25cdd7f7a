"""A batch of preference records -> int64 column arrays for a Ray Data ``map_batches`` stage (pure, no Ray).

One output row per record (paired) or per reply (unpaired/KTO), every sequence column of shape
``[rows, max_seq_len]``, never packed: a preference loss compares whole sequences, so each row holds
exactly one prompt and reply. The batch's counters ride on its first row, as in
``data/tokenize_blocks.py``, so written files can be summed without a second pass. A batch that
drops every record has no row to carry them, so the pipeline counts drops as records in minus rows
out (exact: one row per kept example), not from ``n_dropped``.

KTO rows also carry a KL row (``kl_*``): the row's prompt with the *previous* kept reply of the
batch (TRL's rotation by one, ``rotate_by_one``), so KTO's KL estimate compares the model's
log-probs of replies to prompts they do not answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any, TypeVar

import numpy as np

from tuneforge.data.errors import DataError
from tuneforge.data.preference.encode import PAIRED_COLUMNS, UNPAIRED_COLUMNS, encode_preference_result
from tuneforge.data.preference.ir import PAIRED, UNPAIRED, PreferenceRecord, unpair

T = TypeVar("T")

#: per-batch totals, on each batch's first row (0 on the others): records kept, dropped, truncated
PREFERENCE_COUNTERS: tuple[str, ...] = ("n_records", "n_dropped", "n_truncated")
#: KTO's KL rows: each kept reply's prompt with the previous kept reply (truncated, never dropped)
KL_COLUMNS: tuple[str, ...] = ("kl_input_ids", "kl_labels", "kl_attention_mask")


@dataclass(frozen=True)
class PreferenceSettings:
    """What besides the tokenizer decides a batch's rows.

    ``kind``: ``paired`` for the pairwise losses (DPO, IPO, ORPO, SimPO), ``unpaired`` for KTO,
    which also takes paired data (each pair becomes a desirable and an undesirable example).
    """

    template: str
    max_seq_len: int
    truncation: str = "truncate"
    kind: str = PAIRED

    def __post_init__(self) -> None:
        if self.kind not in (PAIRED, UNPAIRED):
            raise ValueError(f"unknown preference kind {self.kind!r}; expected {PAIRED} or {UNPAIRED}")

    def key(self) -> list[Any]:
        """The settings as a cache key lists them."""
        return list(astuple(self))

    @property
    def columns(self) -> tuple[str, ...]:
        """The model columns a batch has (KTO: the replies, their labels and the KL rows)."""
        return PAIRED_COLUMNS if self.kind == PAIRED else UNPAIRED_COLUMNS + KL_COLUMNS


def _examples(records: Sequence[PreferenceRecord], kind: str) -> list[PreferenceRecord]:
    if kind == UNPAIRED:
        return [one for rec in records for one in unpair(rec)]
    for rec in records:
        if rec.kind != PAIRED:
            raise DataError(
                "an unpaired (KTO) record cannot train a paired loss (DPO, IPO, ORPO, SimPO); use KTO or "
                "give chosen and rejected replies",
                rec.source,
                rec.line,
                kind="unpaired_for_pairs",
            )
    return list(records)


def encode_preference_batch(
    records: Sequence[PreferenceRecord], tokenizer: object, settings: PreferenceSettings
) -> dict[str, np.ndarray]:
    """Records -> ``settings.columns`` (int64; ``kto_label`` is ``[rows]``) + ``PREFERENCE_COUNTERS``."""
    s = settings
    rows: list[dict[str, list[int]]] = []
    kept: list[PreferenceRecord] = []
    counts = dict.fromkeys(PREFERENCE_COUNTERS, 0)
    for rec in _examples(records, s.kind):
        enc = encode_preference_result(
            rec, tokenizer, template=s.template, max_seq_len=s.max_seq_len, truncation=s.truncation
        )
        counts["n_truncated"] += enc.status == "truncated"
        if enc.columns is None:
            counts["n_dropped"] += 1
            continue
        counts["n_records"] += 1
        rows.append(enc.columns)
        kept.append(rec)
    if s.kind == UNPAIRED:
        for row, kl in zip(rows, _kl_rows(kept, tokenizer, s), strict=True):
            row.update(kl)
    out: dict[str, np.ndarray] = {}
    for c in s.columns:
        shape = (len(rows),) if c == "kto_label" else (len(rows), s.max_seq_len)
        out[c] = np.asarray([r[c] for r in rows], dtype=np.int64).reshape(shape)
    for name, value in counts.items():
        out[name] = np.zeros(len(rows), dtype=np.int64)
        if rows:
            out[name][0] = value
    return out


def rotate_by_one(items: Sequence[T]) -> list[T]:
    """KTO's mismatch rule: ``[y_1, ..., y_n] -> [y_n, y_1, ..., y_{n-1}]``.

    Row i's KL reply is row ``(i - 1) mod n``'s: the batch's own replies, each paired with another
    prompt (the KTO paper's recommendation). TRL's ``KTOTrainer._prepare_dataset`` applies the same
    rule per batch (a unit test checks its source line).
    """
    return list(items[-1:]) + list(items[:-1])


def _kl_rows(
    kept: list[PreferenceRecord], tokenizer: object, s: PreferenceSettings
) -> list[dict[str, list[int]]]:
    """Each kept reply's prompt with the previous kept reply, as ``kl_*`` columns."""
    out = []
    for rec, previous in zip(kept, rotate_by_one(kept), strict=True):
        mismatched = PreferenceRecord(rec.prompt, previous.chosen, label=True, tools=rec.tools)
        enc = encode_preference_result(
            mismatched, tokenizer, template=s.template, max_seq_len=s.max_seq_len, truncation="truncate"
        )
        assert enc.columns is not None  # truncation "truncate" keeps every reply
        out.append(
            {f"kl_{c}": enc.columns[f"completion_{c}"] for c in ("input_ids", "labels", "attention_mask")}
        )
    return out
