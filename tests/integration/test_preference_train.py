"""Preference alignment end to end on a real Ray head: pairs -> Ray Data -> Ray Train + DeepSpeed -> registry.

The bundled pairs (``assets/data/tiny_pairs.jsonl``) prefer a right answer over the same words
reversed. Each test runs a short real job and checks behaviour:

- DPO with LoRA on 2 workers at ZeRO-2 (the reference: the base with the adapter switched off)
  makes the model prefer the chosen replies of its training pairs: its implicit reward against the
  base is right on most pairs, with a 95% interval above 0.5, and it prefers them more often than
  the base does;
- full fine-tuning with DPO at ZeRO-3, the reference log-probs precomputed by a Ray Data pass and
  streamed with the batch: it trains (reward accuracy on held-out pairs rises), and the checkpoint
  and the registered model reload with the logits the trained model had in memory;
- KTO with full fine-tuning at ZeRO-3 against a frozen, partitioned copy of the base
  (``reference: model``) trains;
- the promotion gate ranks versions by preference accuracy on the held-out pairs: the DPO run's
  version replaces a barely trained champion (1 step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from transformers import AutoModelForCausalLM

from tuneforge.config import load_config
from tuneforge.data.trained_format import TrainedFormat
from tuneforge.distributed.runner import run_job
from tuneforge.evaluation.preference import evaluate_preference
from tuneforge.tracking import load_hf_model, resolve_tracking_uri
from tuneforge.training.checkpoint import load_probe

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DPO = REPO / "jobs/configs/finetune/tiny_cpu_dpo.yaml"
PAIRS = REPO / "platform/tuneforge/assets/data/tiny_pairs.jsonl"


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits.float()


def _metric_history(run_id: str, key: str) -> list[float]:
    client = MlflowClient(resolve_tracking_uri(None))
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def dpo_lora(ray_head, tuneforge_home):
    """A barely trained champion (1 step at lr 1e-5), then the DPO LoRA run as its challenger."""
    weak = load_config(
        DPO,
        [
            "trainer.max_steps=1", "trainer.lr=1e-5", "trainer.eval_every=0",
            "tracking.run_name=pref-gate-weak", "registry.model_name=pref-dpo", "registry.promote=true",
        ],
    )  # fmt: skip
    first = run_job(weak)
    assert first.promotion is not None and first.promotion["promoted"]  # no champion yet
    job = load_config(
        DPO, ["tracking.run_name=pref-dpo-lora", "registry.model_name=pref-dpo", "registry.promote=true"]
    )
    return run_job(job)


def test_dpo_lora_prefers_chosen_on_its_training_pairs(dpo_lora):
    s = dpo_lora
    assert s.steps == 30
    model, tok = load_hf_model(f"models:/pref-dpo/{s.version}")
    base = AutoModelForCausalLM.from_pretrained(Path(s.run_dir) / "base")
    fmt = TrainedFormat(template="chatml", max_seq_len=64)
    tuned = evaluate_preference(model, tok, PAIRS, fmt, reference=(base, "base"))
    before = evaluate_preference(base, tok, PAIRS, fmt)
    acc = tuned.metrics["reward_accuracy"]
    assert acc.mean > 0.5 and acc.low > 0.5, acc
    assert tuned.metrics["preference_accuracy"].mean > before.metrics["preference_accuracy"].mean
    # Logged every evaluation: the held-out reward accuracy and margin rose from step 0.
    margins = _metric_history(s.run_id, "eval_reward_margin")
    assert len(margins) >= 3 and margins[-1] > margins[0]
    assert _metric_history(s.run_id, "eval_reward_accuracy")[-1] > 0.5
    chosen, rejected = (_metric_history(s.run_id, f"eval_logps_{side}") for side in ("chosen", "rejected"))
    assert len(chosen) == len(rejected) == len(margins)
    assert chosen[-1] - rejected[-1] > chosen[0] - rejected[0]  # the log-prob gap moved to the chosen side
    assert s.eval_loss_after < s.eval_loss_before  # the DPO loss on held-out pairs fell


def test_full_dpo_zero3_precomputed_reference_trains_and_reloads(ray_head, tuneforge_home):
    job = load_config(
        DPO,
        [
            "method.name=full",
            "method.objective=dpo",
            "method.reference=precomputed",
            "trainer.lr=3e-3",
            "trainer.max_steps=12",
            "distributed.zero_stage=3",
            "tracking.run_name=pref-dpo-full-z3",
            "registry.model_name=pref-dpo-full",
        ],
    )
    s = run_job(job)
    assert s.eval_loss_after < s.eval_loss_before
    assert _metric_history(s.run_id, "eval_reward_accuracy")[-1] > 0.5
    ckpt = Path(s.checkpoint)
    ids, trained_logits = load_probe(ckpt)
    reloaded = AutoModelForCausalLM.from_pretrained(ckpt)
    assert torch.allclose(_logits(reloaded, ids), trained_logits, atol=1e-5)
    registered, _ = load_hf_model(f"models:/pref-dpo-full/{s.version}")
    assert torch.allclose(_logits(registered, ids), trained_logits, atol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(Path(s.run_dir) / "base")
    assert not torch.allclose(_logits(base, ids), trained_logits, atol=1e-3)


def test_kto_full_zero3_with_a_frozen_reference_copy_trains(ray_head, tuneforge_home):
    """KTO (pairs unpaired into labelled replies, KL rows built by the pipeline) with full fine-tuning
    at ZeRO-3 and ``reference: model``: every worker holds a partitioned frozen copy of the base."""
    job = load_config(
        DPO,
        [
            "method.name=full", "method.objective=kto", "method.reference=model", "trainer.lr=3e-3",
            "trainer.max_steps=12", "distributed.zero_stage=3", "tracking.run_name=pref-kto-full-z3",
            "registry.model_name=null",
        ],
    )  # fmt: skip
    s = run_job(job)
    assert s.steps == 12 and s.eval_loss_after < s.eval_loss_before
    assert abs(s.eval_loss_before - 0.5) < 1e-4  # KTO at init: policy == reference, loss 1 - sigmoid(0)
    accuracy = _metric_history(s.run_id, "eval_reward_accuracy")
    assert accuracy[-1] > accuracy[0]


def test_gate_promotes_by_preference_accuracy(dpo_lora):
    d = dpo_lora.promotion
    assert d is not None and d["metric"] == "preference_accuracy", d
    assert d["promoted"], d["reasons"]
    assert d["candidate"]["mean"] > d["champion"]["mean"] and d["improvement"]["low"] > 0
    client = MlflowClient(resolve_tracking_uri(None))
    assert str(client.get_model_version_by_alias("pref-dpo", "champion").version) == dpo_lora.version


def test_eval_preference_cli_reports_reward_accuracy_with_intervals(dpo_lora):
    """The docs' `tuneforge eval MODEL --preference FILE --reference BASE` on the run's held-out pairs."""
    run_dir = Path(dpo_lora.run_dir)
    cmd = [
        str(Path(sys.executable).parent / "tuneforge"), "eval", f"models:/pref-dpo/{dpo_lora.version}",
        "--preference", str(run_dir / "eval.jsonl"), "--reference", str(run_dir / "base"), "--json",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["reference"] == str(run_dir / "base") and s["n"] >= 10
    for name in ("preference_accuracy", "reward_accuracy", "reward_margin"):
        assert s[name]["low"] <= s[name]["mean"] <= s[name]["high"], (name, s[name])
    assert s["reward_accuracy"]["mean"] > 0.5 and s["reward_margin"]["mean"] > 0
    assert "reward_accuracy" in out.stderr and "95% CI" in out.stderr
