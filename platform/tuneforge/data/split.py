"""Deterministic train/eval split by content hash.

A record's side depends only on its text and the seed -- not on file order, sharding, or which Ray
worker sees it -- so every worker and every rerun agrees without coordination, and duplicates of a
record always land on the same side (no eval leakage through exact duplicates).
"""

from __future__ import annotations

import hashlib


def is_eval_hash(content_hash: str, eval_fraction: float, seed: int) -> bool:
    """True for about ``eval_fraction`` of records, from a record's content hash (the plan keeps only hashes).

    ``sha256(f"{seed}:{content_hash}")`` read as a number in [0, 1) is uniform, so the share is right
    in expectation, and a different seed draws an independent split.
    """
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
    digest = hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()
    return int(digest, 16) / 2**256 < eval_fraction
