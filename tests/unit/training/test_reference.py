"""``reference: model``: a frozen copy of the base, partitioned under ZeRO-3, is the DPO reference.

On 2 spawned gloo ranks at ZeRO-3 (the real ``setup_engine`` for a fully fine-tuned policy and the
real ``setup_reference`` for the copy):

- the copy is partitioned like the policy: each rank holds about half of every weight, none whole;
- its log-probs of a preference batch equal those of the same base run plainly in one process;
- before any step the policy is the reference, so the DPO loss is ln 2 and every reward is 0;
- after a few optimizer steps the policy's log-probs moved, the reference's did not (frozen, no
  gradients), and the loss the objective reports is TRL's DPO loss of those log-probs.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import config_from_dict
from tuneforge.models.factory import build_tiny_model, load_model
from tuneforge.models.io import save_hf
from tuneforge.testing import TINY_MODEL, spawn, synthetic_pairs
from tuneforge.training.engine import seed_everything, setup_engine
from tuneforge.training.objectives import PreferenceObjective
from tuneforge.training.preference_loss import sequence_logps
from tuneforge.training.reference import setup_reference

VOCAB, SEQ, ROWS, PROMPT = 64, 16, 4, 6
STEPS = 3


def _job(world: int) -> Any:
    return config_from_dict(
        {
            "data": {"train_files": ["pairs.jsonl"]},
            "model": {"tiny": TINY_MODEL.model_dump()},
            "method": {"name": "full", "objective": "dpo", "reference": "model", "beta": 0.1},
            "trainer": {"max_seq_len": SEQ, "micro_batch_size": ROWS, "grad_accum": 1, "lr": 1e-2},
            "distributed": {"num_workers": world, "zero_stage": 3},
            "registry": {"model_name": None},
        }
    )


def _pairs(seed: int) -> dict[str, torch.Tensor]:
    return synthetic_pairs(ROWS, SEQ, PROMPT, VOCAB, seed)


def _plain_logps(base_dir: Path, job: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model = load_model(base_dir, job.model).eval()
    ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
    with torch.no_grad():
        return sequence_logps(model(input_ids=ids).logits, labels)[0]


def _run(rank: int, world: int, base_dir: str) -> dict[str, Any]:
    job = _job(world)
    seed_everything(0)
    policy = setup_engine(
        load_model(base_dir, job.model), job.trainer, job.distributed, world, STEPS, torch.float32
    )
    reference = setup_reference(
        load_model(base_dir, job.model), job.trainer, job.distributed, world, torch.float32
    )
    held = [(p.ds_tensor.numel(), p.ds_numel, p.numel()) for p in reference.engine.module.parameters()]
    objective = PreferenceObjective(job.method, reference)
    batch = _pairs(seed=rank)
    first = objective.forward(policy, batch)
    ref_before = torch.cat(objective._ref(policy, batch, ("chosen", "rejected")))
    for step in range(STEPS):
        out = objective.forward(policy, _pairs(seed=100 + step * world + rank))
        policy.backward(out.loss)
        policy.step()
    after = objective.forward(policy, batch)
    return {
        "held": held,
        "first_loss": float(first.loss),
        "first_rewards": torch.cat([first.chosen_rewards, first.rejected_rewards]),
        "ref_before": ref_before,
        "ref_after": torch.cat(objective._ref(policy, batch, ("chosen", "rejected"))),
        "policy_after": torch.cat(objective.last_logps),
        "loss_after": float(after.loss),
        "ref_trainable": sum(p.requires_grad for p in reference.engine.module.parameters()),
    }


def test_frozen_reference_copy_is_partitioned_exact_and_stays_fixed_while_the_policy_trains() -> None:
    job = _job(2)
    with tempfile.TemporaryDirectory() as root:
        base_dir = Path(root) / "base"
        save_hf(build_tiny_model(job.model.tiny, VOCAB, seed=0), None, base_dir)
        results = spawn(_run, 2, str(base_dir))
        plain = [_plain_logps(base_dir, job, _pairs(seed=rank)) for rank in range(2)]
    for rank, r in enumerate(results):
        # ZeRO-3: no rank holds a whole weight; each holds its (padded) half of every one.
        assert all(local_full == 0 for _, _, local_full in r["held"])
        assert all(shard >= ds_numel / 2 and shard <= ds_numel / 2 + 2 for shard, ds_numel, _ in r["held"])
        assert r["ref_trainable"] == 0
        torch.testing.assert_close(r["ref_before"], plain[rank], atol=1e-5, rtol=1e-5)
        assert abs(r["first_loss"] - math.log(2)) < 1e-6 and r["first_rewards"].abs().max() < 1e-6
        torch.testing.assert_close(r["ref_after"], r["ref_before"], atol=0, rtol=0)  # frozen
        moved = (r["policy_after"] - r["ref_after"]).abs().max()
        assert moved > 1e-2, moved  # the policy trained away from the reference
        chosen, rejected = r["policy_after"].chunk(2)
        ref_c, ref_r = r["ref_after"].chunk(2)
        dpo = -torch.nn.functional.logsigmoid(0.1 * ((chosen - ref_c) - (rejected - ref_r))).mean()
        assert abs(r["loss_after"] - float(dpo)) < 1e-6
