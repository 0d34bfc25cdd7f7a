"""Length statistics of a preference file as the model will see it (``tuneforge data preview``).

Computed with the same pieces and length policy as the encoder (``preference_pieces``,
``fit_lengths``), so "how many pairs are longer than max_seq_len and what happens to them" is the
answer a run gets, not an estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneforge.data.preference.encode import preference_pieces
from tuneforge.data.preference.ir import PAIRED, UNPAIRED, PreferenceRecord
from tuneforge.data.stats import percentile


def _percentiles(values: list[int]) -> dict[str, int]:
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else 0,
    }


def preference_stats(
    records: Sequence[PreferenceRecord], tokenizer: object, template: str, max_seq_len: int, truncation: str
) -> dict[str, Any]:
    """Records per kind, prompt / reply / total lengths in tokens, and the over-long records' fate.

    ``length`` is prompt + the longest reply: what must fit in ``max_seq_len`` for both sides of a
    pair to be encoded whole.
    """
    prompts: list[int] = []
    replies: list[int] = []
    lengths: list[int] = []
    trained: list[int] = []
    for rec in records:
        pieces = preference_pieces(rec, tokenizer, template)
        prompt = sum(len(ids) for _, ids, _, _ in pieces.pop("prompt"))
        sides = [sum(len(ids) for _, ids, _, _ in ps) for ps in pieces.values()]
        trained += [sum(len(ids) for _, ids, t, _ in ps if t) for ps in pieces.values()]
        prompts.append(prompt)
        replies += sides
        lengths.append(prompt + max(sides))
    over = sum(1 for n in lengths if n > max_seq_len)
    return {
        "records": len(records),
        PAIRED: sum(1 for r in records if r.kind == PAIRED),
        UNPAIRED: sum(1 for r in records if r.kind == UNPAIRED),
        "prompt_tokens": _percentiles(prompts),
        "reply_tokens": _percentiles(replies),
        "trained_tokens_per_reply": round(sum(trained) / len(trained), 1) if trained else 0.0,
        "length": _percentiles(lengths),
        "max_seq_len": max_seq_len,
        "over_max_seq_len": over,
        "truncated": over if truncation == "truncate" else 0,
        "dropped_too_long": over if truncation == "drop" else 0,
    }
