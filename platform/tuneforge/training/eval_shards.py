"""Each rank's share of the held-out set, every record counted once, every rank in lockstep.

Why not Ray Data's ``streaming_split(world, equal=True)``: to give every rank the same number of rows
it drops the remainder, so a 2-worker run's ``eval_loss`` silently left out up to ``world - 1`` rows per
pass and disagreed with ``tuneforge eval`` of the same checkpoint on the same file (0.24% on SmolLM2 at
ZeRO-3). Here every rank reads the whole (small) held-out stream, keeps the micro-batches at indices
``rank, rank + world, ...``, and, when the batches do not divide evenly, ends with padding batches that
are forwarded but not counted: under ZeRO-3 a forward pass gathers parameters collectively, so every
rank must run as many as the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch

#: Key that marks a padding batch (its loss is computed for lockstep and not counted).
PAD_KEY = "eval_padding"


def lockstep_shard(
    batches: Iterable[Mapping[str, torch.Tensor]], rank: int, world: int
) -> Iterator[Mapping[str, torch.Tensor]]:
    """This rank's batches of the whole stream, padded to ``ceil(batches / world)`` with marked copies."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    total = mine = 0
    template: Mapping[str, torch.Tensor] | None = None
    for index, batch in enumerate(batches):
        total += 1
        if template is None:
            template = batch
        if index % world == rank:
            mine += 1
            yield batch
    if template is None:
        return
    for _ in range(-(-total // world) - mine):
        yield {**template, PAD_KEY: torch.ones(1)}


def is_padding(batch: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``batch`` only keeps the ranks in step (see ``lockstep_shard``)."""
    return PAD_KEY in batch


def without_padding_key(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch's model inputs (a new dict: replayed batches must stay as they were)."""
    return {k: v for k, v in batch.items() if k != PAD_KEY}


__all__ = ["PAD_KEY", "is_padding", "lockstep_shard", "without_padding_key"]
