"""The preference losses equal TRL's on identical inputs: every objective, against TRL 1.16's own code.

One batch of random token ids (prompts masked -100 in the labels, right padding) goes through a
tiny random-init Llama policy and a differently seeded reference. TRL's side runs the trainers'
own methods on an ``object.__new__(Trainer)`` with just the attributes they read set (an
accelerator stub that gathers nothing), its own collators and its own fused-LM-head log-prob
gathering; our side runs ``sequence_logps`` on the plain logits and the functions under test.
Losses, logged rewards and the gradients on every policy weight must agree.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tuneforge.config import TinyModelConfig
from tuneforge.data import IGNORE_INDEX
from tuneforge.data.preference.batch import rotate_by_one
from tuneforge.models.factory import build_tiny_model
from tuneforge.training.preference_loss import (
    PreferenceKnobs,
    kto_loss,
    paired_loss,
    preference_metrics,
    sequence_logps,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import trl  # noqa: E402
from trl.experimental.cpo import CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOTrainer  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference, KTOTrainer  # noqa: E402
from trl.trainer.utils import add_fused_lm_head  # noqa: E402

VOCAB = 64
PAD = 0
ATOL = 1e-5


def test_trl_is_the_pinned_reference() -> None:
    assert trl.__version__ == "1.16.0"


# --------------------------------------------------------------------------------------------- fixtures


def _model(seed: int) -> torch.nn.Module:
    cfg = TinyModelConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return build_tiny_model(cfg, vocab_size=VOCAB, seed=seed, pad_token_id=PAD).eval()


@pytest.fixture
def policy() -> torch.nn.Module:
    return _model(seed=0)


@pytest.fixture
def ref() -> torch.nn.Module:
    return _model(seed=1)


def _ids(rng: random.Random, lo: int, hi: int) -> list[int]:
    return [rng.randrange(1, VOCAB) for _ in range(rng.randint(lo, hi))]


def _pairs(n: int = 4, seed: int = 7) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    return [
        {"prompt_ids": _ids(rng, 2, 6), "chosen_ids": _ids(rng, 1, 7), "rejected_ids": _ids(rng, 1, 7)}
        for _ in range(n)
    ]


class _Accelerator:
    """What TRL's loss methods read from an ``Accelerator``, for one process."""

    device = torch.device("cpu")

    def gather(self, tensor: Any) -> Any:
        return tensor

    gather_for_metrics = gather

    def unwrap_model(self, model: Any) -> Any:
        return model

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _trainer(cls: type, **attrs: Any) -> Any:
    trainer = object.__new__(cls)
    defaults: dict[str, Any] = {
        "accelerator": _Accelerator(),
        "args": SimpleNamespace(gradient_checkpointing_kwargs=None),
        "aux_loss_enabled": False,
        "_metrics": {"train": defaultdict(list), "eval": defaultdict(list)},
        "_total_train_tokens": 0,
        "_tp_size": 1,
    }
    for name, value in {**defaults, **attrs}.items():
        setattr(trainer, name, value)
    return trainer


def _dpo_trainer(policy: torch.nn.Module, ref: torch.nn.Module, loss_type: str, **attrs: Any) -> Any:
    """A DPOTrainer as its __init__ leaves it for these models (the fused LM head patched on both)."""
    add_fused_lm_head(policy, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    add_fused_lm_head(ref)
    return _trainer(
        DPOTrainer,
        model=policy,
        ref_model=ref,
        loss_types=[loss_type],
        loss_weights=[1.0],
        ld_alpha=None,
        precompute_ref_logps=False,
        f_divergence_type="reverse_kl",
        use_weighting=False,
        **attrs,
    )


def _grads(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


def _assert_same_grads(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def _our_paired_logps(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], grad: bool = True
) -> tuple[torch.Tensor, ...]:
    """Our side: plain logits -> sequence_logps on the DPO collator's layout ([chosen; rejected])."""
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logps, tokens = sequence_logps(logits, labels)
    c, r = logps.chunk(2)
    n_c, n_r = tokens.chunk(2)
    return c, r, n_c, n_r, logits


def _cpo_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same rows in the layout CPOTrainer / ORPOTrainer collate (chosen_* / rejected_* keys)."""
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    out = {}
    for half, name in zip((0, 1), ("chosen", "rejected"), strict=True):
        out[f"{name}_input_ids"] = batch["input_ids"].chunk(2)[half]
        out[f"{name}_attention_mask"] = batch["attention_mask"].chunk(2)[half]
        out[f"{name}_labels"] = labels.chunk(2)[half]
    return out


# ------------------------------------------------------------------------------------ sequence_logps


def test_sequence_logps_equals_a_brute_force_loop() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, 5:] = -100  # padding
    labels[2, :] = -100  # nothing scored
    sums, counts = sequence_logps(logits, labels)
    for b in range(3):
        total, n = 0.0, 0
        for t in range(1, 7):
            if labels[b, t] != -100:
                total += float(torch.log_softmax(logits[b, t - 1].double(), -1)[labels[b, t]])
                n += 1
        assert counts[b] == n
        assert abs(float(sums[b]) - total) < 1e-5
    assert sums.dtype == torch.float32 and counts.dtype == torch.int64


def test_sequence_logps_upcasts_bf16_logits() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 300, generator=g).bfloat16()
    labels = torch.randint(0, 300, (2, 5), generator=g)
    sums, _ = sequence_logps(logits, labels)
    exact, _ = sequence_logps(logits.float(), labels)
    torch.testing.assert_close(sums, exact)


# ------------------------------------------------------------------------------------- DPO and IPO


@pytest.mark.parametrize("objective", ["dpo", "ipo"])
def test_dpo_and_ipo_equal_trl_dpo_trainer(
    objective: str, policy: torch.nn.Module, ref: torch.nn.Module
) -> None:
    knobs = PreferenceKnobs(beta=0.3)
    batch = DataCollatorForPreference(pad_token_id=PAD)(_pairs())
    trainer = _dpo_trainer(
        policy, ref, "sigmoid" if objective == "dpo" else "ipo", beta=knobs.beta, label_smoothing=0.0
    )
    theirs = trainer._compute_loss(policy, batch, return_outputs=False)
    logged = {k: v[-1] for k, v in trainer._metrics["eval"].items()}

    c, r, n_c, n_r, _ = _our_paired_logps(policy, batch)
    rc, rr, _, _, _ = _our_paired_logps(ref, batch, grad=False)
    out = paired_loss(
        objective,
        knobs,
        chosen_logps=c,
        rejected_logps=r,
        chosen_tokens=n_c,
        rejected_tokens=n_r,
        ref_chosen_logps=rc,
        ref_rejected_logps=rr,
    )

    assert abs(float(out.loss.detach()) - float(theirs.detach())) < ATOL
    assert out.losses.shape == (4,)
    metrics = preference_metrics(out)
    assert abs(metrics["chosen_rewards"] - logged["rewards/chosen"]) < ATOL
    assert abs(metrics["rejected_rewards"] - logged["rewards/rejected"]) < ATOL
    assert abs(metrics["reward_margin"] - logged["rewards/margins"]) < ATOL
    assert metrics["reward_accuracy"] == logged["rewards/accuracies"]
    assert abs(float(c.detach().mean()) - logged["logps/chosen"]) < ATOL
    _assert_same_grads(_grads(out.loss, policy), _grads(trainer._compute_loss(policy, batch, False), policy))


def test_dpo_label_smoothing_is_cdpo_as_in_trl_cpo_loss(
    policy: torch.nn.Module, ref: torch.nn.Module
) -> None:
    """TRL 1.16's DPO `sigmoid` ignores label_smoothing; TRL keeps the cDPO formula in CPOTrainer.cpo_loss."""
    knobs = PreferenceKnobs(beta=0.3, label_smoothing=0.2)
    batch = DataCollatorForPreference(pad_token_id=PAD)(_pairs())
    dpo = _dpo_trainer(policy, ref, "sigmoid", beta=knobs.beta, label_smoothing=knobs.label_smoothing)
    smoothed = dpo._compute_loss(policy, batch, False)
    dpo.label_smoothing = 0.0
    assert float(smoothed.detach()) == float(
        dpo._compute_loss(policy, batch, False).detach()
    )  # the finding, pinned

    # TRL's own log-prob gathering (fused LM head) for both models, then TRL's cDPO formula on the log-ratios.
    pc, pr = dpo.compute_ref_log_probs(policy, batch)
    rc, rr = dpo.compute_ref_log_probs(ref, batch)
    cpo = _trainer(
        CPOTrainer,
        loss_type="sigmoid",
        alpha=0.0,
        beta=knobs.beta,
        label_smoothing=knobs.label_smoothing,
        simpo_gamma=0.0,
    )
    losses, chosen_rewards, rejected_rewards = cpo.cpo_loss(pc - rc, pr - rr)

    c, r, n_c, n_r, _ = _our_paired_logps(policy, batch)
    oc, orr, _, _, _ = _our_paired_logps(ref, batch, grad=False)
    out = paired_loss(
        "dpo",
        knobs,
        chosen_logps=c,
        rejected_logps=r,
        chosen_tokens=n_c,
        rejected_tokens=n_r,
        ref_chosen_logps=oc,
        ref_rejected_logps=orr,
    )
    torch.testing.assert_close(out.losses.detach(), losses, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.chosen_rewards, chosen_rewards, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.rejected_rewards, rejected_rewards, atol=ATOL, rtol=0)
    assert float(out.loss.detach()) != pytest.approx(
        float(smoothed.detach()), abs=1e-4
    )  # smoothing really changes our loss


# ------------------------------------------------------------------------------------------ SimPO


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_simpo_equals_trl_cpo_trainer(label_smoothing: float, policy: torch.nn.Module) -> None:
    knobs = PreferenceKnobs(beta=2.0, simpo_gamma=0.7, label_smoothing=label_smoothing)
    batch = DataCollatorForPreference(pad_token_id=PAD)(_pairs())
    trainer = _trainer(
        CPOTrainer,
        is_encoder_decoder=False,
        pad_token_id=PAD,
        loss_type="simpo",
        cpo_alpha=0.0,
        alpha=0.0,
        beta=knobs.beta,
        simpo_gamma=knobs.simpo_gamma,
        label_smoothing=knobs.label_smoothing,
    )
    theirs, logged = trainer.get_batch_loss_metrics(policy, _cpo_batch(batch))

    c, r, n_c, n_r, _ = _our_paired_logps(policy, batch)
    out = paired_loss(
        "simpo", knobs, chosen_logps=c, rejected_logps=r, chosen_tokens=n_c, rejected_tokens=n_r
    )

    assert abs(float(out.loss.detach()) - float(theirs.detach())) < ATOL
    metrics = preference_metrics(out)
    for ours_key, trl_key in [
        ("chosen_rewards", "rewards/chosen"),
        ("rejected_rewards", "rewards/rejected"),
        ("reward_margin", "rewards/margins"),
        ("reward_accuracy", "rewards/accuracies"),
    ]:
        assert abs(metrics[ours_key] - logged[trl_key]) < ATOL, ours_key
    theirs_again, _ = trainer.get_batch_loss_metrics(policy, _cpo_batch(batch))
    _assert_same_grads(_grads(out.loss, policy), _grads(theirs_again, policy))


# ------------------------------------------------------------------------------------------- ORPO


def test_orpo_equals_trl_orpo_trainer(policy: torch.nn.Module) -> None:
    knobs = PreferenceKnobs(orpo_lambda=0.25)
    batch = DataCollatorForPreference(pad_token_id=PAD)(_pairs())
    trainer = _trainer(ORPOTrainer, is_encoder_decoder=False, padding_value=PAD, beta=knobs.orpo_lambda)
    theirs, logged = trainer.get_batch_loss_metrics(policy, _cpo_batch(batch))

    c, r, n_c, n_r, logits = _our_paired_logps(policy, batch)
    # TRL's SFT term scores the whole chosen sequence (prompt too): labels = input_ids where attended.
    full_labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    nll_logps, nll_tokens = sequence_logps(logits.chunk(2)[0], full_labels.chunk(2)[0])
    out = paired_loss(
        "orpo",
        knobs,
        chosen_logps=c,
        rejected_logps=r,
        chosen_tokens=n_c,
        rejected_tokens=n_r,
        chosen_nll_logps=nll_logps,
        chosen_nll_tokens=nll_tokens,
    )

    assert abs(float(out.loss.detach()) - float(theirs.detach())) < ATOL
    metrics = preference_metrics(out)
    for ours_key, trl_key in [
        ("chosen_rewards", "rewards/chosen"),
        ("rejected_rewards", "rewards/rejected"),
        ("reward_margin", "rewards/margins"),
        ("reward_accuracy", "rewards/accuracies"),
        ("nll_loss", "nll_loss"),
        ("log_odds_ratio", "log_odds_ratio"),
        ("log_odds_chosen", "log_odds_chosen"),
    ]:
        assert abs(metrics[ours_key] - logged[trl_key]) < ATOL, ours_key
    theirs_again, _ = trainer.get_batch_loss_metrics(policy, _cpo_batch(batch))
    _assert_same_grads(_grads(out.loss, policy), _grads(theirs_again, policy))


def test_orpo_without_full_sequence_nll_uses_the_completion_token_mean() -> None:
    c, r = torch.tensor([-6.0, -9.0]), torch.tensor([-8.0, -4.0])
    n_c, n_r = torch.tensor([2, 4]), torch.tensor([4, 2])
    out = paired_loss(
        "orpo", PreferenceKnobs(), chosen_logps=c, rejected_logps=r, chosen_tokens=n_c, rejected_tokens=n_r
    )
    assert float(out.extras["nll_loss"]) == pytest.approx(15.0 / 6.0)
    assert float(out.loss.detach()) == pytest.approx(float(out.losses.mean()))


# -------------------------------------------------------------------------------------------- KTO


def _kto_examples() -> list[dict[str, Any]]:
    rng = random.Random(11)
    labels = [True, False, True, True, False]
    examples = [
        {"prompt_ids": _ids(rng, 2, 6), "completion_ids": _ids(rng, 1, 7), "label": y} for y in labels
    ]
    # TRL's rule, KTOTrainer._prepare_dataset (tests/unit/data/preference/test_batch.py checks its source).
    kl = rotate_by_one([e["completion_ids"] for e in examples])
    return [{**e, "KL_completion_ids": k} for e, k in zip(examples, kl, strict=True)]


def _mismatched_pairs(
    input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor, *, pad_token_id: int
) -> tuple[torch.Tensor, ...]:
    """KTO's KL batch built from a collated batch (row i = prompt i + completion ``(i - 1) mod B``).

    Test support: it lays our rows out as TRL's ``DataCollatorForUnpairedPreference`` does, so the
    KTO loss can be compared with TRL's on identical inputs (tuneforge itself builds the KL rows in
    the data layer, ``data/preference/batch.py``).

    Each row must be laid out ``[prompt][completion][padding]`` (right padding): the completion is
    the attended positions whose label is not -100, the prompt every attended position before it.
    Returns ``(input_ids, labels, attention_mask)`` of the mismatched rows, right-padded with
    ``pad_token_id`` to their longest row; labels are the completion ids and -100 elsewhere. This
    is TRL's rule (``KTOTrainer._prepare_dataset`` rotates ``completion_ids`` by +1 within each
    ``per_device_train_batch_size`` block; ``DataCollatorForUnpairedPreference`` lays the rows out),
    applied to the batch the loss sees. TRL fixes the blocks when it prepares the dataset (and so
    demands sequential sampling); applied at train time it needs no fixed order, but precomputed
    reference KL log-probs are only valid for the batch composition they were computed on.
    """
    prompts: list[torch.Tensor] = []
    completions: list[torch.Tensor] = []
    for i in range(input_ids.shape[0]):
        attended = attention_mask[i].bool()
        length = int(attended.sum())
        if not bool(attended[:length].all()):
            raise ValueError(f"row {i}: mismatched_pairs needs right padding")
        row_ids, row_labels = input_ids[i, :length], labels[i, :length]
        trained = (row_labels != IGNORE_INDEX).nonzero().flatten()
        if trained.numel() == 0:
            raise ValueError(f"row {i} has no completion tokens")
        start = int(trained[0])
        if trained.numel() != length - start:
            raise ValueError(
                f"row {i}: the completion must be the end of the row ([prompt][completion][pad])"
            )
        prompts.append(row_ids[:start])
        completions.append(row_ids[start:])
    rows = [torch.cat([p, y]) for p, y in zip(prompts, rotate_by_one(completions), strict=True)]
    width = max(int(row.numel()) for row in rows)
    out_ids = input_ids.new_full((len(rows), width), pad_token_id)
    out_labels = input_ids.new_full((len(rows), width), IGNORE_INDEX)
    out_mask = attention_mask.new_zeros((len(rows), width))
    for i, (p, row) in enumerate(zip(prompts, rows, strict=True)):
        out_ids[i, : row.numel()] = row
        out_labels[i, p.numel() : row.numel()] = row[p.numel() :]
        out_mask[i, : row.numel()] = 1
    return out_ids, out_labels, out_mask


def test_mismatched_pairs_match_trl_collator() -> None:
    batch = DataCollatorForUnpairedPreference(pad_token_id=PAD)(_kto_examples())
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    ids, kl_labels, mask = _mismatched_pairs(
        batch["input_ids"], labels, batch["attention_mask"], pad_token_id=PAD
    )
    assert torch.equal(ids, batch["KL_input_ids"])
    assert torch.equal(mask, batch["KL_attention_mask"])
    assert torch.equal(kl_labels, batch["KL_input_ids"].masked_fill(batch["KL_completion_mask"] == 0, -100))


def test_kto_equals_trl_kto_trainer(policy: torch.nn.Module, ref: torch.nn.Module) -> None:
    knobs = PreferenceKnobs(beta=0.5, kto_desirable_weight=1.3, kto_undesirable_weight=0.8)
    batch = DataCollatorForUnpairedPreference(pad_token_id=PAD)(_kto_examples())
    add_fused_lm_head(policy, outputs=("log_probs", "entropy", "mean_logits"))
    add_fused_lm_head(ref)
    trainer = _trainer(
        KTOTrainer,
        model=policy,
        ref_model=ref,
        calculate_KL=True,
        precompute_ref_logps=False,
        loss_type="kto",
        beta=knobs.beta,
        desirable_weight=knobs.kto_desirable_weight,
        undesirable_weight=knobs.kto_undesirable_weight,
    )
    theirs = trainer._compute_loss(policy, batch, return_outputs=False)
    logged = {k: v[-1] for k, v in trainer._metrics["eval"].items()}

    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    kl_ids, kl_labels, kl_mask = _mismatched_pairs(
        batch["input_ids"], labels, batch["attention_mask"], pad_token_id=PAD
    )

    def logps(
        model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, lab: torch.Tensor
    ) -> torch.Tensor:
        return sequence_logps(model(input_ids=ids, attention_mask=mask).logits, lab)[0]

    pol = logps(policy, batch["input_ids"], batch["attention_mask"], labels)
    with torch.no_grad():
        ref_logps = logps(ref, batch["input_ids"], batch["attention_mask"], labels)
        kl_logps = logps(policy, kl_ids, kl_mask, kl_labels)
        ref_kl_logps = logps(ref, kl_ids, kl_mask, kl_labels)
    out = kto_loss(
        knobs,
        logps=pol,
        ref_logps=ref_logps,
        kl_logps=kl_logps,
        ref_kl_logps=ref_kl_logps,
        desirable=batch["label"],
    )

    assert abs(float(out.loss.detach()) - float(theirs.detach())) < ATOL
    metrics = preference_metrics(out)
    assert abs(metrics["kl"] - logged["kl"]) < ATOL
    assert abs(metrics["chosen_rewards"] - logged["rewards/chosen"]) < ATOL
    assert abs(metrics["rejected_rewards"] - logged["rewards/rejected"]) < ATOL
    assert abs(metrics["reward_margin"] - logged["rewards/margins"]) < ATOL
    assert "reward_accuracy" not in metrics  # unpaired: TRL logs none either
    assert out.chosen_rewards.shape == (3,) and out.rejected_rewards.shape == (2,)
    _assert_same_grads(_grads(out.loss, policy), _grads(trainer._compute_loss(policy, batch, False), policy))


def test_kto_kl_is_clamped_detached_and_reduced() -> None:
    knobs = PreferenceKnobs(beta=1.0)
    logps = torch.tensor([-3.0, -5.0], requires_grad=True)
    kl_logps = torch.tensor([-9.0, -9.0], requires_grad=True)
    out = kto_loss(
        knobs,
        logps=logps,
        ref_logps=torch.tensor([-4.0, -4.0]),
        kl_logps=kl_logps,
        ref_kl_logps=torch.tensor([-4.0, -4.0]),
        desirable=torch.tensor([True, False]),
    )
    assert float(out.extras["kl"]) == 0.0  # mean(kl - ref) = -5, clamped
    out.loss.backward()
    assert kl_logps.grad is None
    reduced = kto_loss(
        knobs,
        logps=logps,
        ref_logps=torch.tensor([-4.0, -4.0]),
        kl_logps=kl_logps,
        ref_kl_logps=torch.tensor([-4.0, -4.0]),
        desirable=torch.tensor([True, False]),
        kl_reduce=lambda kl: kl + 7.0,
    )  # as if other ranks' mean were higher
    assert float(reduced.extras["kl"]) == pytest.approx(2.0)


# -------------------------------------------------------------------------------------- gradients


def test_dpo_loss_falls_as_the_chosen_logp_rises() -> None:
    knobs = PreferenceKnobs(beta=0.1)
    chosen = torch.tensor([-20.0, -15.0], requires_grad=True)
    rejected = torch.tensor([-18.0, -16.0], requires_grad=True)
    kwargs: dict[str, Any] = {
        "chosen_tokens": torch.tensor([5, 4]),
        "rejected_tokens": torch.tensor([6, 3]),
        "ref_chosen_logps": torch.tensor([-19.0, -15.5]),
        "ref_rejected_logps": torch.tensor([-18.5, -15.0]),
    }
    out = paired_loss("dpo", knobs, chosen_logps=chosen, rejected_logps=rejected, **kwargs)
    out.loss.backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert bool((chosen.grad < 0).all()) and bool((rejected.grad > 0).all())
    higher = paired_loss(
        "dpo", knobs, chosen_logps=chosen.detach() + 1.0, rejected_logps=rejected.detach(), **kwargs
    )
    assert float(higher.loss.detach()) < float(out.loss.detach())


def test_one_dpo_step_on_the_policy_widens_the_margin(policy: torch.nn.Module, ref: torch.nn.Module) -> None:
    knobs = PreferenceKnobs(beta=0.5)
    batch = DataCollatorForPreference(pad_token_id=PAD)(_pairs())
    rc, rr, _, _, _ = _our_paired_logps(ref, batch, grad=False)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    losses = []
    for _ in range(2):
        c, r, n_c, n_r, _ = _our_paired_logps(policy, batch)
        out = paired_loss(
            "dpo",
            knobs,
            chosen_logps=c,
            rejected_logps=r,
            chosen_tokens=n_c,
            rejected_tokens=n_r,
            ref_chosen_logps=rc,
            ref_rejected_logps=rr,
        )
        losses.append(float(out.loss.detach()))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert losses[1] < losses[0]


def test_bad_calls_are_refused() -> None:
    t = torch.tensor([-1.0])
    n = torch.tensor([1])
    with pytest.raises(ValueError, match="needs ref"):
        paired_loss(
            "dpo", PreferenceKnobs(), chosen_logps=t, rejected_logps=t, chosen_tokens=n, rejected_tokens=n
        )
    with pytest.raises(ValueError, match="paired_loss computes"):
        paired_loss(
            "kto", PreferenceKnobs(), chosen_logps=t, rejected_logps=t, chosen_tokens=n, rejected_tokens=n
        )
    with pytest.raises(ValueError, match="label_smoothing"):
        PreferenceKnobs(label_smoothing=0.5)
