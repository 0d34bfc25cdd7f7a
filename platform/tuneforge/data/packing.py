"""Batch building: exact packing, right padding, collation, and the model inputs for each.

Packing puts several tokenized documents into fixed blocks of ``max_seq_len`` tokens. It is exact
here: no token attends across a document boundary, and no document is trained to predict its first
token from the previous document's tail, so a packed batch gives the same per-document logits and
the same token-mean loss as running the documents one by one (tests prove it for sdpa and eager).

How the boundaries reach the model: packed blocks carry ``position_ids`` that restart at 0 for
every document and carry **no** ``attention_mask``. transformers 5.x (``masking_utils``) then finds
the documents itself (``find_packed_sequence_indices``: a new document wherever the position does
not grow by 1) and builds a block-diagonal causal mask for every attention implementation (sdpa,
eager, flex; flash-attention derives ``cu_seqlens`` from the same positions). The alternative, a
custom 4D mask passed as ``attention_mask``, is taken as-is but must be a boolean "may attend" mask
for sdpa and an additive float mask for eager, so it would tie the data layer to one implementation.

Trap (measured on transformers 5.23): the detection runs only when ``past_key_values`` is None,
and a model whose config has ``use_cache=True`` (the default) creates an empty cache in a plain
forward, which silently turns the detection off -- documents then attend to each other. So
``to_model_inputs`` always passes ``use_cache=False``, and it refuses a packed batch without
``position_ids``. Nothing may add an all-ones ``attention_mask`` to a packed batch either.

The pad tail of a block is one more "document": ``pad_id`` tokens, labels ``-100``, positions
0, 1, 2, ... It attends only to itself, and nothing attends to it, so it changes no real logit.

Padded rows (``pad_examples``) keep an ``attention_mask`` (1 real, 0 pad); its presence is what
tells ``to_model_inputs`` which kind of batch it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

IGNORE_INDEX = -100


def _checked_length(example: dict[str, list[int]], max_seq_len: int) -> int:
    """Length of a ``{"input_ids", "labels"}`` example; callers must have truncated it already."""
    n = len(example["input_ids"])
    if len(example["labels"]) != n:
        raise ValueError(f"input_ids and labels differ in length ({n} vs {len(example['labels'])})")
    if not 0 < n <= max_seq_len:
        raise ValueError(f"example of {n} tokens does not fit max_seq_len={max_seq_len} (truncate it first)")
    return n


def pack_examples(
    examples: Iterable[dict[str, list[int]]], max_seq_len: int, pad_id: int
) -> list[dict[str, list[int]]]:
    """Pack examples into blocks of exactly ``max_seq_len`` tokens, best-fit decreasing.

    Longest example first (ties in input order), each into the open block it fills most tightly, or
    a new block; examples are never split. Best-fit decreasing left 0.4% padding on the benchmark's
    instruction corpus where first-fit in input order left 2.9% (docs/performance.md). The blocks
    are then put back in input order (by their earliest example): sorted by length, the first rows
    of every call held its longest documents, and a mix whose sources differ in length drifted from
    its configured shares early in training. The layout depends on the lengths and their order
    alone, which ``tokenize_blocks.source_tokens`` relies on. Returns blocks
    with ``input_ids``, ``labels`` and ``position_ids``. The label of each document's first token is
    ``-100``: HF shifts labels left, so that label would otherwise be predicted from the previous
    document's last token.
    """
    examples = list(examples)
    lengths = [_checked_length(example, max_seq_len) for example in examples]
    blocks: list[dict[str, list[int]]] = []
    room: list[int] = []  # free tokens of each block
    first: list[int] = []  # input index of each block's earliest example
    for i in sorted(range(len(examples)), key=lambda j: -lengths[j]):
        example, n = examples[i], lengths[i]
        fits = [b for b, free in enumerate(room) if free >= n]
        if fits:
            b = min(fits, key=lambda k: room[k])
        else:
            b = len(blocks)
            blocks.append({"input_ids": [], "labels": [], "position_ids": []})
            room.append(max_seq_len)
            first.append(i)
        room[b] -= n
        first[b] = min(first[b], i)
        block = blocks[b]
        block["input_ids"] += example["input_ids"]
        block["labels"] += [IGNORE_INDEX, *example["labels"][1:]]
        block["position_ids"] += range(n)
    blocks = [blocks[b] for b in sorted(range(len(blocks)), key=first.__getitem__)]
    for block in blocks:
        tail = max_seq_len - len(block["input_ids"])
        block["input_ids"] += [pad_id] * tail
        block["labels"] += [IGNORE_INDEX] * tail
        block["position_ids"] += range(tail)
    return blocks


def pad_examples(
    examples: Iterable[dict[str, list[int]]], max_seq_len: int, pad_id: int
) -> list[dict[str, list[int]]]:
    """One example per row, right-padded to ``max_seq_len``, with ``attention_mask`` and ``position_ids``.

    Right padding keeps every real token at the position it would have alone; positions run
    0..max_seq_len-1 through the pads (masked, so their values never matter).
    """
    rows = []
    for example in examples:
        n = _checked_length(example, max_seq_len)
        tail = max_seq_len - n
        rows.append(
            {
                "input_ids": list(example["input_ids"]) + [pad_id] * tail,
                "labels": list(example["labels"]) + [IGNORE_INDEX] * tail,
                "attention_mask": [1] * n + [0] * tail,
                "position_ids": list(range(max_seq_len)),
            }
        )
    return rows


def collate(rows: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Stack equal-length rows into ``LongTensor`` columns (for non-Ray use and tests)."""
    if not rows:
        raise ValueError("cannot collate an empty list of rows")
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        raise ValueError("rows have different keys; do not mix packed and padded rows in one batch")
    return {key: torch.tensor([row[key] for row in rows], dtype=torch.long) for key in keys}


def to_model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | bool]:
    """The keyword arguments for ``model(**inputs)``, ``labels`` included so HF computes the loss.

    A batch without ``attention_mask`` is packed: it must have ``position_ids`` (they carry the
    document boundaries). ``use_cache=False`` always -- see the module docstring for why packing
    depends on it; training never needs a KV cache anyway.
    """
    packed = "attention_mask" not in batch
    if packed and "position_ids" not in batch:
        raise ValueError("a packed batch (no attention_mask) needs position_ids to separate its documents")
    keys = ("input_ids", "labels", "position_ids") if packed else ("input_ids", "labels", "attention_mask")
    inputs: dict[str, torch.Tensor | bool] = {key: batch[key] for key in keys}
    if not packed and "position_ids" in batch:
        inputs["position_ids"] = batch["position_ids"]
    inputs["use_cache"] = False
    return inputs
