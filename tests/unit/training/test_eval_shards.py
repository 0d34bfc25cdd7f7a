"""The held-out set is shared among ranks without dropping a record, and ranks stay in lockstep.

The ZeRO-3 case is the one that matters: 2 gloo ranks evaluate 5 micro-batches (rank 0 gets 3, rank
1 gets 2 plus a padding batch it must still forward, or the parameter gathers would hang). The
reduced ``eval_loss`` must equal the token-weighted mean of all 5 batches computed in one process;
an equal split would have dropped one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from tuneforge.config import config_from_dict
from tuneforge.models.factory import build_tiny_model, load_model
from tuneforge.models.io import save_hf
from tuneforge.testing import TINY_MODEL, spawn
from tuneforge.training.engine import seed_everything, setup_engine
from tuneforge.training.eval_shards import PAD_KEY, is_padding, lockstep_shard, without_padding_key
from tuneforge.training.objectives import SftObjective

VOCAB, SEQ, ROWS, BATCHES = 64, 16, 2, 5


@pytest.mark.parametrize(("total", "world"), [(5, 2), (4, 2), (1, 2), (0, 3), (7, 3), (2, 4)])
def test_every_batch_is_counted_once_and_every_rank_runs_as_many(total: int, world: int) -> None:
    batches = [{"input_ids": torch.tensor([i])} for i in range(total)]
    shards = [list(lockstep_shard(batches, rank, world)) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # lockstep
    assert len(shards[0]) == -(-total // world)
    counted = sorted(int(b["input_ids"]) for s in shards for b in s if not is_padding(b))
    assert counted == list(range(total))
    for shard in shards:
        for b in shard:
            assert set(without_padding_key(b)) == {"input_ids"}
            assert is_padding(b) == (PAD_KEY in b)


def test_a_rank_outside_the_world_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 2 outside a world of 2"):
        list(lockstep_shard([], 2, 2))


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(BATCHES):
        ids = torch.randint(0, VOCAB, (ROWS, SEQ), generator=g)
        labels = ids.clone()
        labels[:, : 2 + i] = -100  # a different number of trained tokens per batch
        out.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
    return out


def _job(world: int) -> Any:
    return config_from_dict(
        {
            "data": {"train_files": ["x.jsonl"]},
            "model": {"tiny": TINY_MODEL.model_dump()},
            "trainer": {"max_seq_len": SEQ, "micro_batch_size": ROWS, "grad_accum": 1},
            "distributed": {"num_workers": world, "zero_stage": 3},
            "registry": {"model_name": None},
        }
    )


def _eval(rank: int, world: int, base_dir: str) -> float:
    job = _job(world)
    seed_everything(0)
    engine = setup_engine(
        load_model(base_dir, job.model), job.trainer, job.distributed, world, 1, torch.float32
    )
    metrics = SftObjective().evaluate(engine, lockstep_shard(_batches(), rank, world), torch.device("cpu"))
    engine.destroy()
    return metrics["eval_loss"]


def test_zero3_eval_over_uneven_shards_equals_the_whole_set_in_one_process() -> None:
    with tempfile.TemporaryDirectory() as root:
        base_dir = Path(root) / "base"
        save_hf(build_tiny_model(TINY_MODEL, VOCAB, seed=0), None, base_dir)
        losses = spawn(_eval, 2, str(base_dir))
        model = load_model(str(base_dir), _job(1).model).eval()
    total = tokens = 0.0
    with torch.no_grad():
        for b in _batches():
            n = float((b["labels"][:, 1:] != -100).sum())
            total += float(model(**b).loss) * n
            tokens += n
    assert losses[0] == losses[1]
    assert abs(losses[0] - total / tokens) < 1e-5, (losses, total / tokens)
