"""The eval-set replay: the source is read once, later passes come from memory, nothing partial is kept."""

from __future__ import annotations

import pytest

from tuneforge.training.replay import ReplayableBatches


class CountingSource:
    def __init__(self, n: int) -> None:
        self.n, self.passes = n, 0

    def __call__(self):
        self.passes += 1
        return iter(range(self.n))


def test_second_pass_replays_without_reading_the_source() -> None:
    src = CountingSource(5)
    batches = ReplayableBatches(src, max_batches=10)
    assert list(batches()) == [0, 1, 2, 3, 4] and src.passes == 1
    assert batches.replaying
    assert list(batches()) == list(batches()) == [0, 1, 2, 3, 4]
    assert src.passes == 1


def test_abandoned_first_pass_keeps_nothing() -> None:
    src = CountingSource(5)
    batches = ReplayableBatches(src, max_batches=10)
    for b in batches():
        if b == 2:
            break
    assert not batches.replaying
    assert list(batches()) == [0, 1, 2, 3, 4] and src.passes == 2  # read again, in full
    assert batches.replaying


def test_a_set_over_the_limit_streams_every_time() -> None:
    src = CountingSource(5)
    batches = ReplayableBatches(src, max_batches=3)
    assert list(batches()) == [0, 1, 2, 3, 4]
    assert list(batches()) == [0, 1, 2, 3, 4]
    assert not batches.replaying and src.passes == 2


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batches"):
        ReplayableBatches(CountingSource(1), max_batches=-1)
