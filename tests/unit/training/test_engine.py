"""Training controls without processes or DeepSpeed: LR schedule shapes, config rules, early-stopping
logic, weight-decay groups, dropout and RoPE-scaling overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tuneforge.config import ConfigError, config_from_dict
from tuneforge.config.schema import EarlyStoppingConfig, RopeScalingConfig
from tuneforge.models.factory import apply_dropout, apply_rope_scaling, build_tiny_model, load_model
from tuneforge.models.io import save_hf
from tuneforge.testing import TINY_MODEL
from tuneforge.training.early_stopping import EarlyStopper
from tuneforge.training.engine import build_optimizer, build_scheduler, warmup_steps_for

# TINY_MODEL's shape as a job's ``model.tiny`` section, with its own 64-token vocabulary: these tests build
# models without a tokenizer and feed random ids below VOCAB, so a small vocabulary is all they need.
VOCAB = 64
TINY = {**TINY_MODEL.model_dump(), "vocab_size": VOCAB}


def job(**sections: Any):
    base = {"data": {"train_files": ["x.jsonl"]}, "registry": {"model_name": None}}
    return config_from_dict({**base, **sections})


def scaled(kind: str, factor: float = 2) -> dict[str, Any]:
    """Model + trainer sections: a 64-position tiny base trained at 128 tokens with RoPE scaling."""
    tiny = {**TINY, "max_position_embeddings": 64}
    return {
        "model": {"tiny": tiny, "rope_scaling": {"type": kind, "factor": factor}},
        "trainer": {"max_seq_len": 128},
    }


def lrs(scheduler: str, total: int = 10, **trainer: Any) -> list[float]:
    """The LR multiplier in effect at each optimizer step 0..total-1 (peak lr 1.0)."""
    t = job(trainer={"lr": 1.0, "lr_scheduler": scheduler, **trainer}).trainer
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, t, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_constant_schedule_is_flat() -> None:
    assert lrs("constant") == [1.0] * 10


def test_constant_with_warmup_ramps_then_holds() -> None:
    assert lrs("constant_with_warmup", warmup_steps=4) == pytest.approx([0, 0.25, 0.5, 0.75] + [1.0] * 6)


def test_linear_warms_up_then_decays_to_zero() -> None:
    got = lrs("linear", warmup_steps=2)
    assert got[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert got[2:] == pytest.approx([(10 - s) / 8 for s in range(2, 10)])  # straight line to 0 at step 10


def test_cosine_warms_up_then_follows_half_a_cosine() -> None:
    got = lrs("cosine", warmup_steps=2)
    assert got[:2] == pytest.approx([0.0, 0.5])
    expected = [0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 10)]
    assert got[2:] == pytest.approx(expected)
    assert all(a >= b for a, b in zip(got[2:], got[3:], strict=False))


def test_warmup_ratio_rounds_up_and_drives_the_schedule() -> None:
    t = job(trainer={"warmup_ratio": 0.25}).trainer
    assert warmup_steps_for(t, 10) == 3  # ceil(2.5)
    assert warmup_steps_for(job(trainer={"warmup_ratio": 0.01}).trainer, 10) == 1  # never silently 0
    assert lrs("linear", warmup_ratio=0.2)[:3] == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"warmup_steps": 2, "warmup_ratio": 0.1}, "either warmup_steps or warmup_ratio"),
        ({"lr_scheduler": "constant", "warmup_steps": 2}, "constant_with_warmup"),
        ({"early_stopping": {"patience": 2}}, "eval_every"),
        ({"early_stopping": {"patience": 0}, "eval_every": 1}, "greater than or equal to 1"),
    ],
)
def test_contradictory_trainer_settings_are_rejected(trainer: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        job(trainer=trainer)


def test_context_longer_than_the_tiny_model_needs_rope_scaling() -> None:
    tiny = {**TINY, "max_position_embeddings": 64}
    with pytest.raises(ConfigError, match="rope_scaling"):
        job(model={"tiny": tiny}, trainer={"max_seq_len": 128})
    assert job(**scaled("linear")).model.rope_scaling == RopeScalingConfig(type="linear", factor=2)
    with pytest.raises(ConfigError, match="greater than 1"):
        job(model={"rope_scaling": {"type": "linear", "factor": 1}})


def test_early_stopper_counts_evaluations_without_improvement() -> None:
    stopper = EarlyStopper.from_config(EarlyStoppingConfig(patience=2, min_delta=0.1))
    assert stopper is not None and EarlyStopper.from_config(None) is None
    assert not stopper.update(5.0)  # the pre-training eval sets the best
    assert not stopper.update(4.95)  # better, but not by more than min_delta: strike 1
    assert not stopper.update(4.5)  # a real improvement resets the count
    assert not stopper.update(4.6)
    assert stopper.update(math.nan)  # NaN never improves: strike 2 -> stop
    assert stopper.best == 4.5 and stopper.stopped


def test_no_weight_decay_on_norms_and_biases() -> None:
    model = build_tiny_model(job(model={"tiny": TINY}).model.tiny, VOCAB, seed=0)
    decay, no_decay = build_optimizer(model, 1e-3, 0.1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all("norm" in names[id(p)] for p in no_decay["params"])
    assert {names[id(p)] for p in decay["params"]} >= {"model.embed_tokens.weight", "lm_head.weight"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_dropout_override_sets_attention_dropout_of_llama(tmp_path: Path) -> None:
    cfg = job(model={"tiny": TINY, "dropout": 0.2}).model
    base = save_hf(build_tiny_model(cfg.tiny, VOCAB, seed=0), None, tmp_path / "base")
    model = load_model(base, cfg)
    assert model.config.attention_dropout == 0.2
    assert model.model.layers[0].self_attn.attention_dropout == 0.2
    with pytest.raises(ValueError, match="none of the fields"):
        apply_dropout(object(), 0.1)


def test_linear_rope_scaling_runs_past_the_base_length_and_is_saved(tmp_path: Path) -> None:
    """max_position_embeddings=64, linear x2: a forward at 128 tokens works, the RoPE frequencies are
    halved (positions interpolated), and the saved config carries rope_parameters and the new length."""
    cfg = job(**scaled("linear")).model
    base_model = build_tiny_model(cfg.tiny, VOCAB, seed=0)
    base = save_hf(base_model, None, tmp_path / "base")
    model = load_model(base, cfg).eval()
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, base_model.model.rotary_emb.inv_freq / 2)
    logits = model(input_ids=torch.randint(0, VOCAB, (1, 128))).logits
    assert logits.shape == (1, 128, VOCAB) and torch.isfinite(logits).all()
    model.save_pretrained(tmp_path / "trained")
    saved = json.loads((tmp_path / "trained" / "config.json").read_text())
    assert saved["max_position_embeddings"] == 128
    assert saved["rope_parameters"] == {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    again = load_model(tmp_path / "trained", cfg)  # reloading with the same scaling is a no-op
    assert again.config.max_position_embeddings == 128


@pytest.mark.parametrize(("kind", "length"), [("dynamic", 64), ("yarn", 128)])
def test_dynamic_and_yarn_scaling(kind: str, length: int, tmp_path: Path) -> None:
    cfg = job(**scaled(kind))
    base = save_hf(build_tiny_model(cfg.model.tiny, VOCAB, seed=0), None, tmp_path / "base")
    model = load_model(base, cfg.model)
    assert model.config.rope_parameters["rope_type"] == kind
    assert model.config.max_position_embeddings == length  # dynamic keeps the length it rescales past
    if kind == "yarn":
        assert model.config.rope_parameters["original_max_position_embeddings"] == 64
    assert torch.isfinite(model(input_ids=torch.randint(0, VOCAB, (1, 128))).logits).all()


def test_rope_scaling_refuses_to_stack_on_another_scaling() -> None:
    config = build_tiny_model(job(model={"tiny": TINY}).model.tiny, VOCAB, seed=0).config
    apply_rope_scaling(config, RopeScalingConfig(type="linear", factor=2))
    with pytest.raises(ValueError, match="refusing to stack"):
        apply_rope_scaling(config, RopeScalingConfig(type="yarn", factor=2))


def _train_precisions(rank: int, world: int, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``_train_precision`` for each name, in one process (the spawn and imports are the slow part)."""
    return {name: _train_precision(world, name) for name in names}


def _train_precision(world: int, dtype_name: str) -> dict[str, Any]:
    """Train the tiny model 20 steps through a real DeepSpeed engine at ``model.dtype: dtype_name``."""
    from tuneforge.models.precision import autocast_dtype, resolve_dtype
    from tuneforge.testing import synthetic_batches
    from tuneforge.training.engine import setup_engine

    spec = job(
        model={"tiny": {**TINY, "hidden_size": 64, "intermediate_size": 128}, "dtype": dtype_name},
        trainer={"lr": 3e-3, "lr_scheduler": "constant", "micro_batch_size": 8, "max_seq_len": 32},
        distributed={"num_workers": 1, "zero_stage": 0},
    )
    torch.manual_seed(0)
    model = build_tiny_model(spec.model.tiny, VOCAB, seed=0)
    weights = resolve_dtype(dtype_name, use_gpu=False)
    autocast = autocast_dtype(dtype_name, use_gpu=False)
    engine = setup_engine(model.to(weights), spec.trainer, spec.distributed, world, 20, weights, autocast)
    losses, logits_dtype = [], None
    for batch in synthetic_batches(20, 8, 32, VOCAB, seed=1):
        out = engine(**batch)
        logits_dtype = out.logits.dtype
        engine.backward(out.loss)
        engine.step()
        losses.append(float(out.loss))
    params = {p.dtype for p in engine.module.parameters()}
    state = {t.dtype for s in engine.optimizer.state.values() for t in s.values() if t.dim() > 0}
    return {"losses": losses, "logits": logits_dtype, "params": params, "optimizer": state}


def test_bf16_mixed_runs_bf16_matmuls_on_fp32_weights_and_tracks_fp32() -> None:
    """``model.dtype: bf16-mixed`` (the CPU default where bf16 is native): DeepSpeed's torch_autocast
    casts the matmuls, the weights and Adam's moments stay fp32, and the loss curve follows fp32's."""
    from tuneforge.testing import spawn

    runs = spawn(_train_precisions, 1, ("float32", "bf16-mixed"))[0]
    fp32, mixed = runs["float32"], runs["bf16-mixed"]
    assert fp32["logits"] is torch.float32 and mixed["logits"] is torch.bfloat16
    assert mixed["params"] == {torch.float32} and mixed["optimizer"] == {torch.float32}
    assert mixed["losses"][-1] < 0.5 * mixed["losses"][0]  # it learns
    for a, b in zip(fp32["losses"], mixed["losses"], strict=True):
        assert abs(a - b) <= 0.03 * a, (fp32["losses"], mixed["losses"])


def _train_compiled(rank: int, world: int) -> dict[str, list[float]]:
    """Eager and ``engine.compile()``d runs of the same 4 steps (``trainer.compile``)."""
    from tuneforge.testing import synthetic_batches
    from tuneforge.training.engine import setup_engine

    out = {}
    for compiled in (False, True):
        spec = job(
            model={"tiny": TINY, "dtype": "float32"},
            trainer={"lr": 3e-3, "lr_scheduler": "constant", "micro_batch_size": 4, "compile": compiled},
            distributed={"num_workers": 1, "zero_stage": 0},
        )
        model = build_tiny_model(spec.model.tiny, VOCAB, seed=0)
        engine = setup_engine(model, spec.trainer, spec.distributed, world, 4, torch.float32)
        if spec.trainer.compile:
            engine.compile()
        losses = []
        for batch in synthetic_batches(4, 4, 16, VOCAB, seed=1):
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()
            losses.append(float(loss.detach()))
        out["compiled" if compiled else "eager"] = losses
    return out


@pytest.mark.slow
def test_compiled_engine_trains_like_eager() -> None:
    """``trainer.compile`` (off by default: its compile did not pay for itself on CPU) gives eager's
    losses: the compiled graph is the same model, not an approximation."""
    from tuneforge.testing import spawn

    runs = spawn(_train_compiled, 1)[0]
    assert runs["compiled"] == pytest.approx(runs["eager"], rel=1e-4)
    assert runs["eager"][-1] < runs["eager"][0]
