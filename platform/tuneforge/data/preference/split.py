"""Exact dedup and the train/eval split of preference records, by content hash (the SFT rules).

The side of a record comes from ``data.plan.side_of`` over ``PreferenceRecord.content_hash``:
independent of file order and sharding, duplicates on one side, and the same seed and fraction
split preference data exactly as they split SFT data.
"""

from __future__ import annotations

from collections.abc import Iterable

from tuneforge.data.plan import side_of
from tuneforge.data.preference.ir import PreferenceRecord


def preference_side(
    rec: PreferenceRecord, split: str, eval_fraction: float, seed: int, has_eval_files: bool = False
) -> str:
    """Which split a record of a ``split`` ("train"/"eval") source feeds."""
    return side_of(rec.content_hash(), split, eval_fraction, seed, has_eval_files)


def dedup_records(records: Iterable[PreferenceRecord]) -> tuple[list[PreferenceRecord], int]:
    """The records without exact duplicates (the first copy wins) and how many were dropped."""
    seen: set[str] = set()
    kept: list[PreferenceRecord] = []
    dropped = 0
    for rec in records:
        digest = rec.content_hash()
        if digest in seen:
            dropped += 1
            continue
        seen.add(digest)
        kept.append(rec)
    return kept, dropped


def split_records(
    records: Iterable[PreferenceRecord], eval_fraction: float, seed: int
) -> tuple[list[PreferenceRecord], list[PreferenceRecord]]:
    """(train, eval) of one train source's records by the content-hash rule."""
    train: list[PreferenceRecord] = []
    held: list[PreferenceRecord] = []
    for rec in records:
        (held if preference_side(rec, "train", eval_fraction, seed) == "eval" else train).append(rec)
    return train, held
