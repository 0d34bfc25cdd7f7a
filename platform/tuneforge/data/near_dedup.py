"""Near-duplicate detection for training records (MinHash + LSH from ``datasketch``).

``Conversation.content_hash`` only catches byte-identical dialogues. Scraped and synthetic data often
hold the same text with a changed word, different casing or reflowed whitespace. Those copies
over-weight one example and leak between the train and eval splits. This module finds them
approximately, in one pass, with memory proportional to the number of kept records:

* every record becomes a set of word n-grams ("shingles") of its normalised text;
* a ``datasketch.MinHash`` of that set estimates Jaccard similarity between records;
* a ``datasketch.MinHashLSH`` index finds candidates in roughly constant time per record, and each
  candidate is confirmed with ``MinHash.jaccard``, because an LSH bucket hit alone admits pairs well
  below the threshold.

The module is pure Python (no Ray). The Ray Data glue is expected to feed records in a stable order, and
the first occurrence wins, so results are reproducible for a fixed input order.
"""

from __future__ import annotations

import functools
import json

from datasketch import LeanMinHash, MinHash, MinHashLSH

from tuneforge.data.ir import Conversation

__all__ = ["NearDuplicateIndex", "dedup_text", "shingles"]

# datasketch 2.x needs the permutation scheme spelled out when a MinHash is built from existing
# permutations. "affine32" is its default for new sketches: a collision-free permutation step and
# uint32 storage (half the memory of "legacy").
_SCHEME = "affine32"
_MIN_NUM_PERM = 16
# (false-positive, false-negative) weights for datasketch's banding optimiser; see _lsh_params.
_LSH_WEIGHTS = (0.1, 0.9)


def _normalise(text: str) -> str:
    """Lowercase and collapse all whitespace runs to one space, so trivial variants compare equal."""
    return " ".join(text.lower().split())


def dedup_text(conv: Conversation) -> str:
    """The text that near-duplicate detection compares for one conversation.

    Each message becomes ``"<role>: <content>"``. The role tag keeps a question asked by the user apart
    from the same words said by the assistant. An assistant message's tool calls are added as sorted-key
    JSON; otherwise two tool-calling turns with empty content and different arguments would look
    identical. The offered ``tools`` schemas are left out: many records share one tool set, and
    counting it would make unrelated dialogues look alike. The result is lowercased and
    whitespace-collapsed.
    """
    parts: list[str] = []
    for m in conv.messages:
        part = f"{m.role}: {m.content}"
        if m.tool_calls is not None:
            part += " " + json.dumps(list(m.tool_calls), ensure_ascii=False, sort_keys=True, default=str)
        parts.append(part)
    return _normalise("\n".join(parts))


def shingles(text: str, n: int = 5) -> set[bytes]:
    """The set of word ``n``-grams of ``text`` (split on whitespace), utf-8 encoded for hashing.

    Word n-grams, not characters: a changed word alters at most ``n`` shingles, while unrelated texts
    share almost none. A text shorter than ``n`` words becomes one shingle holding all of it (the empty
    text gives ``{b""}``), so short records still get a sketch and exact short copies still match.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = text.split()
    if len(words) < n:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


@functools.lru_cache(maxsize=32)
def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for ``MinHashLSH``, computed once per (threshold, num_perm).

    Every LSH candidate is confirmed with ``MinHash.jaccard``, so a false candidate costs one vector
    comparison while a missed pair is a duplicate kept. The banding is therefore optimised with
    weights that favour recall, ``_LSH_WEIGHTS``. The default equal weights miss about 30% of pairs
    at Jaccard 0.85 with threshold 0.8 and 128 permutations; these weights miss about 5%.
    datasketch picks the banding by numerical integration, which takes most of a second at
    ``num_perm=128``, so caching keeps building many indexes (one per source, per test) cheap. For
    thresholds near 1 its optimum is a single band, which it rejects; we then use two bands of
    ``num_perm // 2`` rows. That is the most selective banding it accepts, and it still always pairs
    exact copies.
    """
    try:
        probe = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    except ValueError:
        return 2, num_perm // 2
    return probe.b, probe.r


class NearDuplicateIndex:
    """Streaming near-duplicate filter: feed records in order and learn whether each repeats an earlier one.

    ``threshold`` is the estimated Jaccard similarity of shingle sets at or above which two records
    count as duplicates. ``num_perm`` is the MinHash size; the estimate's standard error is about
    ``sqrt(J * (1 - J) / num_perm)``, which is 0.03 at J=0.85 with 128. ``ngram`` is the shingle
    width in words, and ``seed`` fixes the hash permutations so decisions are reproducible.

    Only kept records are indexed, and for each the index keeps its MinHash (as a ``LeanMinHash``) and
    the LSH band keys, never its text. The index is not thread-safe.
    """

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:  # also rejects NaN
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        if num_perm < _MIN_NUM_PERM:
            raise ValueError(
                f"num_perm must be >= {_MIN_NUM_PERM}, got {num_perm!r} "
                "(fewer permutations make the Jaccard estimate too noisy to threshold)"
            )
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram!r}")
        self.threshold = float(threshold)
        self.num_perm = int(num_perm)
        self.ngram = int(ngram)
        self.seed = int(seed)
        # Generating permutations costs O(num_perm) random draws. Every sketch reuses this template's
        # arrays (datasketch shares a canonical array rather than copying it).
        self._template = MinHash(num_perm=self.num_perm, seed=self.seed, scheme=_SCHEME)
        self._lsh = MinHashLSH(num_perm=self.num_perm, params=_lsh_params(self.threshold, self.num_perm))
        # key -> (insertion ordinal, sketch). The ordinal picks the earliest match deterministically:
        # LSH returns candidates from a set whose order depends on the process's string hash seed.
        self._sketches: dict[str, tuple[int, LeanMinHash]] = {}

    def _sketch(self, conv_or_text: Conversation | str) -> MinHash:
        """The MinHash of a record's shingles. A plain string is normalised like ``dedup_text``."""
        if isinstance(conv_or_text, Conversation):
            text = dedup_text(conv_or_text)
        elif isinstance(conv_or_text, str):
            text = _normalise(conv_or_text)
        else:
            raise TypeError(f"expected a Conversation or str, got {type(conv_or_text).__name__}")
        m = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            permutations=self._template.permutations,
            scheme=_SCHEME,
        )
        m.update_batch(shingles(text, self.ngram))
        return m

    def seen_or_add(self, key: str, conv_or_text: Conversation | str) -> str | None:
        """The key of an earlier kept record this one nearly duplicates, or None after indexing it.

        A match needs an LSH candidate whose stored MinHash estimates Jaccard >= ``threshold``. When
        several match, the earliest inserted wins, so the result does not depend on hash-set order.
        A duplicate is not indexed, so every returned key names a kept record (one that survives the
        dedup). ``key`` must be unique among kept records.
        """
        if key in self._sketches:
            raise ValueError(f"key {key!r} is already in the index")
        m = self._sketch(conv_or_text)
        best: tuple[int, str] | None = None
        for cand in self._lsh.query(m):
            ordinal, sketch = self._sketches[cand]
            if (best is None or ordinal < best[0]) and m.jaccard(sketch) >= self.threshold:
                best = (ordinal, cand)
        if best is not None:
            return best[1]
        lean = LeanMinHash(m)
        self._lsh.insert(key, lean, check_duplication=False)
        self._sketches[key] = (len(self._sketches), lean)
        return None

    def __len__(self) -> int:
        """Number of kept (indexed) records; duplicates are not counted."""
        return len(self._sketches)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` names a kept record."""
        return key in self._sketches
