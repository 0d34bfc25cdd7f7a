"""Replay an evaluation set from memory after its first pass.

Why: every evaluation used to iterate the worker's eval shard again, and with Ray Data each pass is a
new streaming execution (a split coordinator, read tasks, a barrier between workers) that costs seconds
before the first batch, several times per run and per sweep trial. Held-out sets are small next to the
training stream, so the batches of the first pass are kept and replayed; a set larger than
``max_batches`` is never kept and streams every time, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ReplayableBatches(Generic[T]):
    """Call it for an iterable of batches: the source's on the first complete pass, memory afterwards.

    A pass that is abandoned part-way (a ``break``) keeps nothing, so a partial set is never replayed.
    """

    def __init__(self, source: Callable[[], Iterable[T]], max_batches: int = 512) -> None:
        if max_batches < 0:
            raise ValueError(f"max_batches must be >= 0 (got {max_batches})")
        self._source = source
        self._max = max_batches
        self._kept: list[T] | None = None
        self._too_large = False

    @property
    def replaying(self) -> bool:
        """Whether the next call is served from memory."""
        return self._kept is not None

    def __call__(self) -> Iterable[T]:
        if self._kept is not None:
            return iter(self._kept)
        return self._first_pass()

    def _first_pass(self) -> Iterator[T]:
        kept: list[T] | None = None if self._too_large else []
        for batch in self._source():
            if kept is not None:
                if len(kept) >= self._max:
                    kept, self._too_large = None, True
                else:
                    kept.append(batch)
            yield batch
        if kept is not None:
            self._kept = kept
