"""Training controls on 2 real ranks, without Ray: ZeRO agreement, grad accumulation, early stopping,
reproducibility and RoPE context extension.

Every case runs the production ``setup_engine`` + ``run_loop`` (DeepSpeed, gloo over loopback) on two
spawned processes; all cases share ONE spawn (``_dist.run_all``) so start-up is paid once (~25-40 s
on 2 CPU cores for the whole module). Data are synthetic counting sequences in which every label is
trained, so every micro-batch has the same number of loss tokens (see ``synthetic_batches``).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import _dist  # tests/integration/_dist.py; pytest puts the test dir on sys.path
import pytest
import torch

from tuneforge.models.factory import build_tiny_model
from tuneforge.testing import reference_train, synthetic_batches

STEPS = 10
LOSS_ATOL = 1e-4  # measured: <= 6e-7 on CPU fp32 (differences come from reduction order only)
PARAM_ATOL = 1e-5  # measured: <= 6e-8


def _case(stage: int, steps: int = STEPS, **trainer: Any) -> dict[str, Any]:
    return {
        "zero_stage": stage,
        "steps": steps,
        "trainer": {"micro_batch_size": 4, "seed": 7, "warmup_steps": 2, "weight_decay": 0.01, **trainer},
        "train": {"n": steps, "rows": 8, "seed": 1, "dir": 1},
        "eval": {"n": 1, "rows": 8, "seed": 2, "dir": 1},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    keep = tmp_path_factory.mktemp("kept")
    cases = {f"zero{s}": _case(s) for s in range(4)}
    cases["accum"] = _case(2, micro_batch_size=2, grad_accum=2)
    early = {"eval_every": 1, "lr": 1e-2, "warmup_steps": 0, "early_stopping": {"patience": 2}}
    cases["es_rise"] = {**_case(2, **early), "eval": {"n": 1, "rows": 8, "seed": 2, "dir": -1}}
    cases["es_fall"] = _case(2, **early)
    for name, seed in (("seed_a", 11), ("seed_a_again", 11), ("seed_b", 12)):
        cases[name] = {**_case(2, steps=4, seed=seed), "model": {"dropout": 0.1}}
    cases["rope"] = {
        **_case(2, steps=2, max_seq_len=128),
        "seq": 128,
        "model": {"rope_scaling": {"type": "linear", "factor": 2}},
        "keep_dir": str(keep / "rope"),
    }
    cases["tokens"] = _case(2, steps=6, eval_every=4, log_every=5)  # an evaluation between log steps
    started = time.time()
    per_rank = _dist.run_all(cases)
    return {"rank0": per_rank[0], "rank1": per_rank[1], "keep": keep, "span": (started, time.time())}


def test_zero_stages_match_plain_pytorch(runs: dict[str, Any]) -> None:
    """ZeRO 0, 1, 2 and 3 on 2 ranks follow a plain single-process AdamW loop on the same global batches.

    Same seed, same init, same 10 global batches of 8 rows (4 per rank), clipping at 1.0, weight
    decay with the no-decay groups, linear warmup then cosine. The loss each rank reports is the
    mean over its rows; the loop averages ranks; with equal token counts per rank that is exactly the
    global-batch mean the reference computes. Tolerance: 1e-4 absolute per step (measured <= 6e-7);
    final weights within 1e-5 for the stages that keep full weights on every rank.
    """
    job = _dist.make_job(_case(0)["trainer"], 0, 1)
    model = build_tiny_model(job.model.tiny, _dist.VOCAB, seed=7)
    batches = synthetic_batches(STEPS, 8, _dist.SEQ, _dist.VOCAB, 1, 1)
    reference, _, _ = reference_train(model, batches, job.trainer, STEPS)
    assert reference[-1] < reference[0] - 0.3  # it learns: the comparison is not between two flat lines
    ref_params = torch.cat([p.detach().flatten() for p in model.parameters()])
    for stage in range(4):
        got = runs["rank0"][f"zero{stage}"]
        assert got["steps"] == STEPS
        assert got["train_loss"] == pytest.approx(reference, abs=LOSS_ATOL), f"ZeRO-{stage}"
        assert got["train_loss"] == runs["rank1"][f"zero{stage}"]["train_loss"]  # reduced: same on all ranks
        if got["params"] is not None:
            torch.testing.assert_close(got["params"], ref_params, atol=PARAM_ATOL, rtol=0)


def test_gradient_accumulation_equals_one_big_batch(runs: dict[str, Any]) -> None:
    """grad_accum=2 x micro-batch 2 gives the trajectory and weights of grad_accum=1 x micro-batch 4.

    HF's loss is a mean per micro-batch and DeepSpeed divides each micro-batch loss by grad_accum, so
    accumulation computes the mean of micro-batch means. It equals the big-batch mean only when every
    micro-batch holds the same number of loss tokens, which the synthetic data guarantee (all labels
    trained, fixed length); with ragged loss masks the two differ by design, not by error. The
    reported train_loss with accumulation is the mean of the micro-batch losses of the step.
    Tolerances as for the ZeRO comparison (measured: 6e-7 on losses, 6e-8 on weights).
    """
    accum, big = runs["rank0"]["accum"], runs["rank0"]["zero2"]
    assert accum["steps"] == big["steps"] == STEPS
    assert accum["train_loss"] == pytest.approx(big["train_loss"], abs=LOSS_ATOL)
    torch.testing.assert_close(accum["params"], big["params"], atol=PARAM_ATOL, rtol=0)


def test_early_stopping_triggers_only_when_eval_stops_improving(runs: dict[str, Any]) -> None:
    """Patience 2, evaluating every step: training on counting-up sequences while evaluating on
    counting-down ones makes eval loss rise, so the run stops after 2 evaluations without improvement,
    still saves and reports its final checkpoint, and records stopped_early/best_eval_loss. On eval data
    of the trained task the loss keeps falling and the run goes the full length.
    """
    for rank in ("rank0", "rank1"):  # the decision is the same on every rank
        rise = runs[rank]["es_rise"]
        assert rise["stopped_early"] is True
        assert rise["steps"] == 2  # step-0 eval is the best; steps 1 and 2 do not beat it
        assert rise["eval_loss"][1] > rise["eval_loss"][0] and rise["eval_loss"][2] > rise["eval_loss"][0]
        assert rise["final_report"]["stopped_early"] == 1.0
        assert rise["final_report"]["best_eval_loss"] == pytest.approx(min(rise["eval_loss"]))
        assert rise["final_report"]["step"] == 2.0
    assert runs["rank0"]["es_rise"]["checkpoints"] == ["step_0000002"]  # the final checkpoint was saved

    fall = runs["rank0"]["es_fall"]
    assert fall["stopped_early"] is False and fall["steps"] == STEPS
    assert fall["final_report"]["stopped_early"] == 0.0
    assert fall["best_eval_loss"] == pytest.approx(fall["eval_loss_after"])
    assert fall["eval_loss_after"] < fall["eval_loss"][0]


def test_same_seed_same_losses_different_seed_differs(runs: dict[str, Any]) -> None:
    """With dropout 0.1 on (so the RNG matters at every step), two runs with seed 11 report bit-identical
    loss trajectories and eval losses; seed 12 (another init and other dropout masks) differs."""
    a, again, b = (runs["rank0"][k] for k in ("seed_a", "seed_a_again", "seed_b"))
    assert a["train_loss"] == again["train_loss"]
    assert a["eval_loss"] == again["eval_loss"]
    assert a["train_loss"] != b["train_loss"]


def test_rope_scaling_trains_past_the_base_context_and_is_saved(runs: dict[str, Any]) -> None:
    """A base with max_position_embeddings=64 fine-tunes on 128-token sequences with linear RoPE scaling
    x2; the final checkpoint's config.json carries the scaling and the new length."""
    rope = runs["rank0"]["rope"]
    assert rope["steps"] == 2 and all(math.isfinite(v) for v in rope["train_loss"])
    config = json.loads((runs["keep"] / "rope" / "config.json").read_text())
    assert config["max_position_embeddings"] == 128
    assert config["rope_parameters"]["rope_type"] == "linear"
    assert config["rope_parameters"]["factor"] == 2.0


def test_reports_at_evaluations_count_every_token_so_far(runs: dict[str, Any]) -> None:
    """An evaluation that falls between log steps still reports the tokens of all steps before it:
    the sweep's token budget sums these counts (a stale count once let a sweep overrun its budget)."""
    reports = runs["rank0"]["tokens"]["reports"]
    at_eval, final = reports[0], reports[-1]
    assert at_eval["step"] == 4 and final["step"] == 6
    assert at_eval["train_tokens"] > 0
    assert at_eval["train_tokens"] == final["train_tokens"] * 4 / 6  # every step has the same tokens


def test_each_log_window_reports_its_own_throughput_and_the_first_step_time(runs: dict[str, Any]) -> None:
    """What a benchmark reads: a tokens/s per log window (the median over windows after a warm-up
    excludes start-up effects the cumulative figure keeps) and the wall clock of the first step."""
    case = runs["rank0"]["tokens"]
    windows = case["windows"]
    assert [w["step"] for w in windows] == [4, 5, 6]  # flushed before the eval at 4, then log_every 5, end
    rates = [w["window_tokens_per_second"] for w in windows]
    assert all(math.isfinite(r) and r > 0 for r in rates), rates
    started, ended = runs["span"]
    assert started < case["first_step_unix"] < ended
    assert case["final_report"]["first_step_unix"] == case["first_step_unix"]
