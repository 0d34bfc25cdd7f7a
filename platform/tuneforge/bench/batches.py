"""The single-process paths' batches, built by tuneforge's own data blocks (Ray-free).

The train split's records are read with the same rules the Ray Data pipeline applies
(``data/record_rows.py``) and tokenized and blocked by ``tokenize_and_block`` in chunks of 256 records,
as each Ray Data ``map_batches`` task does; so the plain loops and the HF Trainer train identical
batches, blocked as the full path blocks them. Naive padding is the same records, one per row, padded
to the longest record of each batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from tuneforge.config import JobConfig
from tuneforge.data.ir import Conversation
from tuneforge.data.plan import DataPlan
from tuneforge.data.record_rows import ROW_COLUMNS, SplitRules, file_items, file_rows, row_conversations
from tuneforge.data.tokenize_blocks import EncodeSettings, tokenize_and_block

CHUNK = 256  # records per tokenize_and_block call, as the Ray Data pipeline's map_batches


@dataclass
class Batches:
    """Global batches in step order, with each step's real (non-padding) tokens and computed positions."""

    batches: list[dict[str, torch.Tensor]]
    real_tokens: list[int]
    positions: list[int]

    def step_tokens(self, steps: int) -> list[int]:
        """Real tokens of each of ``steps`` steps (the batches cycle, as the loops do)."""
        return [self.real_tokens[i % len(self.batches)] for i in range(steps)]

    def step_positions(self, steps: int) -> list[int]:
        return [self.positions[i % len(self.batches)] for i in range(steps)]


def train_conversations(job: JobConfig, plan: DataPlan) -> list[Conversation]:
    """The train split's records, in file order, exactly as the pipeline's read tasks select them."""
    d = job.data
    rules = SplitRules.of(
        plan,
        "train",
        eval_fraction=d.eval_fraction,
        seed=job.trainer.seed,
        has_eval_files=bool(d.eval_files),
        on_bad=d.on_bad_record,
    )
    rows = [row for item in file_items(plan, "train") for row in file_rows(item, rules)]
    return row_conversations({c: [r[c] for r in rows] for c in ROW_COLUMNS})


def _blocks(convs: list[Conversation], tokenizer: object, settings: EncodeSettings) -> dict[str, np.ndarray]:
    parts = [
        tokenize_and_block(convs[i : i + CHUNK], None, tokenizer=tokenizer, settings=settings)
        for i in range(0, len(convs), CHUNK)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in (*settings.columns, "n_real")}


def packed_batches(
    convs: list[Conversation], tokenizer: object, settings: EncodeSettings, rows: int
) -> Batches:
    """Packed ``max_seq_len`` rows, ``rows`` per batch (a trailing partial batch is dropped)."""
    blocks = _blocks(convs, tokenizer, replace(settings, packing=True))
    out = Batches([], [], [])
    for i in range(len(blocks["n_real"]) // rows):
        cut = slice(i * rows, (i + 1) * rows)
        out.batches.append(
            {c: torch.from_numpy(blocks[c][cut].copy()) for c in ("input_ids", "labels", "position_ids")}
        )
        out.real_tokens.append(int(blocks["n_real"][cut].sum()))
        out.positions.append(rows * settings.max_seq_len)
    return out


def padded_batches(
    convs: list[Conversation], tokenizer: object, settings: EncodeSettings, rows: int
) -> Batches:
    """One record per row, ``rows`` per batch, right-padded to the batch's longest record (no packing)."""
    blocks = _blocks(convs, tokenizer, replace(settings, packing=False))
    out = Batches([], [], [])
    for i in range(len(blocks["n_real"]) // rows):
        cut = slice(i * rows, (i + 1) * rows)
        width = int(blocks["attention_mask"][cut].sum(axis=1).max())
        batch = {
            c: torch.from_numpy(blocks[c][cut, :width].copy())
            for c in ("input_ids", "labels", "attention_mask")
        }
        out.batches.append(batch)
        out.real_tokens.append(int(blocks["n_real"][cut].sum()))
        out.positions.append(rows * width)
    return out
