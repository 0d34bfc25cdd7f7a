"""Corpus statistics as the model sees it: tokens, trained share per role, lengths, over-long records.

``tuneforge data preview`` prints these so a user can check a dataset (and the template and masking
choices) before spending cluster time: how many tokens are trained and from which role, how long the
records are (p50/p90/p99/max), and how many exceed ``max_seq_len`` and what happens to them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneforge.data.encode import chunk, finish, record_pieces
from tuneforge.data.ir import Conversation
from tuneforge.data.templates import pieces_to_example


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class CorpusStats:
    """Totals over a set of records; ``to_dict`` is the printed/JSON form."""

    max_seq_len: int
    truncation: str
    records: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    tokens_by_role: Counter[str] = field(default_factory=Counter)
    trained_by_role: Counter[str] = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, pieces: Sequence[tuple[str, list[int], bool, str]], status: str) -> None:
        self.records += 1
        length = 0
        for _, ids, trained, role in pieces:
            length += len(ids)
            self.tokens_by_role[role] += len(ids)
            if trained:
                self.trained_by_role[role] += len(ids)
        self.tokens += length
        self.trained_tokens += sum(len(ids) for _, ids, trained, _ in pieces if trained)
        self.lengths.append(length)
        self.outcomes[status] += 1

    @property
    def over_limit(self) -> int:
        return sum(1 for n in self.lengths if n > self.max_seq_len)

    def to_dict(self) -> dict[str, Any]:
        lengths = sorted(self.lengths)
        trained = self.trained_tokens or 1
        return {
            "records": self.records,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "trained_share": round(self.trained_tokens / (self.tokens or 1), 4),
            "trained_share_by_role": {
                r: round(n / trained, 4) for r, n in sorted(self.trained_by_role.items())
            },
            "length": {
                "p50": percentile(lengths, 50),
                "p90": percentile(lengths, 90),
                "p99": percentile(lengths, 99),
                "max": lengths[-1] if lengths else 0,
            },
            "max_seq_len": self.max_seq_len,
            "over_max_seq_len": self.over_limit,
            "truncated": self.outcomes["truncated"],
            "dropped_too_long": self.outcomes["dropped_too_long"],
            "chunked": self.outcomes["chunked"],
            "dropped_no_trained_tokens": self.outcomes["no_trained_tokens"],
        }


def corpus_stats(
    convs: Iterable[Conversation],
    tokenizer: Any,
    template: str,
    max_seq_len: int,
    *,
    truncation: str = "truncate",
    train_on_prompt: bool = False,
    last_turn_only: bool = False,
) -> CorpusStats:
    """Tokenize every record once and count; lengths are before truncation (what the data holds)."""
    stats = CorpusStats(max_seq_len=max_seq_len, truncation=truncation)
    for conv in convs:
        pieces = record_pieces(
            conv, tokenizer, template, train_on_prompt=train_on_prompt, last_turn_only=last_turn_only
        )
        example = pieces_to_example(pieces)
        if conv.mode == "pretrain":
            status = chunk(example["input_ids"], max_seq_len).status
        else:
            status = finish(example, max_seq_len, truncation).status
        stats.add(pieces, status)
    return stats
