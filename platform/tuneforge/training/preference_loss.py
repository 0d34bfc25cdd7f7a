"""Preference-alignment losses for our own DeepSpeed loop: DPO, IPO, ORPO, SimPO and KTO.

Pure torch on per-sequence log-probs. TRL's trainers cannot run inside the loop: each one is a
``transformers.Trainer`` that owns the optimizer step, the accelerator, data collation and
(for DPO/KTO) a patched model forward, while ours is a Ray Train worker driving a DeepSpeed engine.
So the objectives are written here once more, and TRL (pinned in pyproject.toml) is only the
reference: ``tests/unit/training/test_preference_loss.py`` runs TRL 1.16's own trainer code
(``DPOTrainer._compute_loss``, ``KTOTrainer._compute_loss``, ``CPOTrainer`` / ``ORPOTrainer``
``get_batch_loss_metrics``) and these functions on one batch of two tiny Llamas and asserts equal
losses, rewards and gradients. Nothing here imports TRL at run time.

Inputs. ``sequence_logps`` turns a forward's logits and HF-style labels (aligned with
``input_ids``, shifted inside; prompt and padding are -100) into per-row *summed* log-probs and
token counts. The losses take those sums; the length-normalised objectives (IPO, SimPO, ORPO)
divide by the counts themselves, as TRL does.

What each objective is, exactly as TRL 1.16 computes it (``Δ`` = chosen minus rejected; ``s`` =
summed completion log-prob, ``n`` = completion tokens, ``ref`` = the reference model; every
per-example loss is averaged over the batch):

* ``dpo``: ``-(1-ε)·logσ(βΔ) - ε·logσ(-βΔ)`` with ``Δ = (s_c - ref_c) - (s_r - ref_r)``. With
  ``ε = label_smoothing = 0`` this is TRL ``DPOTrainer`` ``loss_type="sigmoid"``. With ``ε > 0`` it is
  conservative DPO (cDPO), the formula TRL's DPO ``sigmoid`` used through the 0.x releases and that
  TRL 1.16 keeps in ``CPOTrainer.cpo_loss`` (``sigmoid``/``simpo``). TRL 1.16's ``DPOTrainer``
  ``sigmoid`` *ignores* ``label_smoothing`` (it only reads it in ``robust``, ``exo_pair`` and
  ``aot``), so there the reference is ``cpo_loss`` applied to the reference log-ratios.
* ``ipo``: ``(Δ̄ - 1/(2β))²`` where ``Δ̄ = (s_c - ref_c)/n_c - (s_r - ref_r)/n_r``. TRL's ``ipo``
  divides each log-ratio by its completion length (its comment: not in the IPO paper, which uses
  sequence-level log-ratios; agreed with the IPO authors). ``β`` is the paper's τ; no smoothing.
* ``simpo``: ``-(1-ε)·logσ(β·(s_c/n_c - s_r/n_r) - γ) - ε·logσ(-(…))``, reference-free, ``γ`` =
  ``simpo_gamma`` (TRL computes ``β·(Δavg - γ/β)``, the same). This is ``CPOTrainer`` with
  ``loss_type="simpo"`` **and** ``cpo_alpha=0``: TRL's CPO default ``cpo_alpha=1.0`` adds a
  behaviour-cloning NLL on top (CPO-SimPO).
* ``orpo``: ``NLL - λ·mean(logσ(log_odds))``, ``log_odds = (ā_c - ā_r) - (log(1-e^ā_c) - log(1-e^ā_r))``
  with ``ā = s/n`` the *average* completion log-prob and ``λ = orpo_lambda`` (TRL's ORPO calls it
  ``beta``). TRL's NLL is ``CrossEntropyLoss`` over the chosen rows: a mean over all scored tokens
  of the chosen half of the batch (not a mean of per-row means), and it scores the **whole** chosen
  sequence, prompt included (every attended token after the first). Pass that sum and count as
  ``chosen_nll_logps``/``chosen_nll_tokens`` (``sequence_logps`` with labels = ``input_ids`` where
  ``attention_mask`` is 1) to match TRL exactly; without them the NLL is taken over the chosen
  completion (``chosen_logps``/``chosen_tokens``), as the ORPO paper writes L_SFT.
* ``kto``: per example ``w_d·(1 - σ(β(r - z)))`` if desirable else ``w_u·(1 - σ(β(z - r)))``, with
  ``r = s - ref`` (summed, not averaged) and ``z = max(0, mean(kl_s - ref_kl_s))`` detached, the KL
  estimate from mismatched (prompt, completion) pairs of the same batch (the data layer's ``kl_*``
  rows, ``data/preference/batch.py``).
  TRL averages ``z`` over ranks before clamping; pass ``kl_reduce`` (an all-reduce mean) for that.

Rewards (what TRL logs): DPO/IPO/KTO ``β·(s - ref)``; SimPO ``β·s/n``; ORPO ``λ·s/n``. Paired
objectives also log ``rewards/accuracies`` = mean(chosen > rejected) and ``rewards/margins``; KTO's
chosen and rejected rewards come from different examples, so it has margins but no accuracy.

Counts: TRL divides by the completion mask before the shift, ``sequence_logps`` counts shifted
labels; they agree whenever the prompt is non-empty (the first token is never scored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

OBJECTIVES = ("sft", "dpo", "ipo", "orpo", "simpo", "kto")
#: Objectives that need no reference model.
REFERENCE_FREE = ("orpo", "simpo")
#: Objectives ``paired_loss`` computes (KTO is unpaired: ``kto_loss``; SFT is the plain LM loss).
PAIRED = ("dpo", "ipo", "orpo", "simpo")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class PreferenceKnobs:
    """The objectives' hyper-parameters, under the meaning TRL gives them (see the module docstring)."""

    beta: float = 0.1
    label_smoothing: float = 0.0  # dpo (cDPO) and simpo; ignored by ipo, orpo, kto
    simpo_gamma: float = 0.5  # SimPO target reward margin (TRL: simpo_gamma)
    orpo_lambda: float = 0.1  # ORPO odds-ratio weight (TRL's ORPO calls it beta)
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must lie in [0, 0.5), got {self.label_smoothing}")
        if self.orpo_lambda < 0 or self.kto_desirable_weight < 0 or self.kto_undesirable_weight < 0:
            raise ValueError("orpo_lambda and the KTO weights must be >= 0")


@dataclass
class PreferenceOutput:
    """One micro-batch's loss and what is logged about it.

    ``loss == losses.mean()`` always, so ``losses.sum()`` and ``losses.numel()`` summed over ranks give
    the mean over the global batch (ORPO's rows carry their share of the batch's token-mean NLL, so
    theirs depend on the batch they were in). Rewards are detached; for paired objectives both are ``[B]`` and
    row-aligned, for KTO ``chosen_rewards`` holds the desirable rows and ``rejected_rewards`` the
    undesirable ones, in batch order.
    """

    loss: Tensor  # scalar, mean over the batch (what backward() gets)
    losses: Tensor  # [B], per example
    chosen_rewards: Tensor  # detached
    rejected_rewards: Tensor  # detached
    paired: bool = True
    #: Objective-specific scalars TRL also logs (detached): ORPO nll_loss / log_odds_ratio /
    #: log_odds_chosen, KTO kl.
    extras: dict[str, Tensor] = field(default_factory=dict)


def sequence_logps(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row sum of log p(label) over tokens whose (shifted) label != -100, and the count of such tokens.

    ``logits`` is ``[B, T, V]`` from a causal LM forward, ``labels`` ``[B, T]`` aligned with its
    ``input_ids`` (position t's logits score ``labels[t + 1]``). The log-softmax is taken in float32
    one row at a time (``logsumexp``; no ``[B, T, V]`` log-prob copy is kept for backward), so bf16
    logits lose nothing. Returns float32 sums ``[B]`` and int64 counts ``[B]``.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits [B, T, V] and labels [B, T] expected, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    index = shift_labels.masked_fill(~mask, 0).unsqueeze(-1)
    picked = torch.gather(shift_logits, -1, index).squeeze(-1).float()
    lse = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in shift_logits])
    per_token = (picked - lse).masked_fill(~mask, 0.0)
    return per_token.sum(-1), mask.sum(-1)


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2 (TRL's ORPO helper, same branches)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def _smoothed_sigmoid_loss(logits: Tensor, label_smoothing: float) -> Tensor:
    return -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing


def paired_loss(
    objective: str,
    knobs: PreferenceKnobs,
    *,
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_tokens: Tensor,
    rejected_tokens: Tensor,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    chosen_nll_logps: Tensor | None = None,
    chosen_nll_tokens: Tensor | None = None,
) -> PreferenceOutput:
    """dpo | ipo | orpo | simpo. chosen_logps etc. are SUMMED per-sequence log-probs (from sequence_logps);
    length-normalised objectives divide by the token counts inside. ORPO's NLL term uses
    chosen_logps/chosen_tokens unless ``chosen_nll_logps``/``chosen_nll_tokens`` (the whole chosen
    sequence, TRL's choice) are given.

    All tensors are ``[B]``, row i of each describing pair i. Reference log-probs are required by
    dpo and ipo and ignored by the reference-free orpo and simpo.
    """
    if objective not in PAIRED:
        raise ValueError(f"paired_loss computes {', '.join(PAIRED)}; got {objective!r}")
    c, r = chosen_logps.float(), rejected_logps.float()
    n_c = chosen_tokens.clamp(min=1).to(c.dtype)
    n_r = rejected_tokens.clamp(min=1).to(c.dtype)
    extras: dict[str, Tensor] = {}

    if objective in ("dpo", "ipo"):
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"{objective} needs ref_chosen_logps and ref_rejected_logps")
        chosen_logratios = c - ref_chosen_logps.float()
        rejected_logratios = r - ref_rejected_logps.float()
        if objective == "dpo":
            delta = chosen_logratios - rejected_logratios
            losses = _smoothed_sigmoid_loss(knobs.beta * delta, knobs.label_smoothing)
        else:
            ipo_delta = chosen_logratios / n_c - rejected_logratios / n_r
            losses = (ipo_delta - 1 / (2 * knobs.beta)) ** 2
        chosen_rewards = knobs.beta * chosen_logratios.detach()
        rejected_rewards = knobs.beta * rejected_logratios.detach()
    elif objective == "simpo":
        avg_c, avg_r = c / n_c, r / n_r
        logits = (avg_c - avg_r) - knobs.simpo_gamma / knobs.beta
        losses = _smoothed_sigmoid_loss(knobs.beta * logits, knobs.label_smoothing)
        chosen_rewards = knobs.beta * avg_c.detach()
        rejected_rewards = knobs.beta * avg_r.detach()
    else:  # orpo
        avg_c, avg_r = c / n_c, r / n_r
        log_odds = (avg_c - avg_r) - (_log1mexp(avg_c) - _log1mexp(avg_r))
        ratio = F.logsigmoid(log_odds)
        if (chosen_nll_logps is None) != (chosen_nll_tokens is None):
            raise ValueError("pass both chosen_nll_logps and chosen_nll_tokens, or neither")
        nll_logps = c if chosen_nll_logps is None else chosen_nll_logps.float()
        nll_tokens = chosen_tokens if chosen_nll_tokens is None else chosen_nll_tokens
        total = nll_tokens.sum().clamp(min=1).to(c.dtype)
        # Each row's share of the token-mean NLL: their mean is -sum(logps) / sum(tokens), TRL's NLL.
        nll_shares = -nll_logps * (c.numel() / total)
        losses = nll_shares - knobs.orpo_lambda * ratio
        chosen_rewards = knobs.orpo_lambda * avg_c.detach()
        rejected_rewards = knobs.orpo_lambda * avg_r.detach()
        extras = {
            "nll_loss": nll_shares.detach().mean(),
            "log_odds_ratio": ratio.detach().mean(),
            "log_odds_chosen": log_odds.detach().mean(),
        }
    return PreferenceOutput(
        loss=losses.mean(),
        losses=losses,
        chosen_rewards=chosen_rewards,
        rejected_rewards=rejected_rewards,
        paired=True,
        extras=extras,
    )


def kto_loss(
    knobs: PreferenceKnobs,
    *,
    logps: Tensor,
    ref_logps: Tensor,
    kl_logps: Tensor,
    ref_kl_logps: Tensor,
    desirable: Tensor,
    kl_reduce: Callable[[Tensor], Tensor] | None = None,
) -> PreferenceOutput:
    """Unpaired KTO; kl_logps are the policy log-probs of mismatched (prompt, completion) pairs of the batch.

    All tensors are ``[B]`` summed completion log-probs (``desirable`` is bool). The KL estimate is
    ``mean(kl_logps - ref_kl_logps)``, detached (TRL even runs that policy forward under no_grad, so
    it may), then ``kl_reduce`` (e.g. an all-reduce mean over ranks, which is what TRL's
    ``gather_for_metrics(...).mean()`` does) and clamped at 0. It needs B > 1: with one example the
    mismatched pair is the example itself and the KL term equals its own log-ratio.
    """
    desirable = desirable.to(torch.bool)
    logratios = logps.float() - ref_logps.float()
    kl = (kl_logps.float() - ref_kl_logps.float()).mean().detach()
    if kl_reduce is not None:
        kl = kl_reduce(kl)
    kl = kl.clamp(min=0)
    chosen_losses = knobs.kto_desirable_weight * (1 - torch.sigmoid(knobs.beta * (logratios - kl)))
    rejected_losses = knobs.kto_undesirable_weight * (1 - torch.sigmoid(knobs.beta * (kl - logratios)))
    losses = torch.where(desirable, chosen_losses, rejected_losses)
    rewards = knobs.beta * logratios.detach()
    return PreferenceOutput(
        loss=losses.mean(),
        losses=losses,
        chosen_rewards=rewards[desirable],
        rejected_rewards=rewards[~desirable],
        paired=False,
        extras={"kl": kl.detach()},
    )


def preference_metrics(out: PreferenceOutput) -> dict[str, float]:
    """Batch means of what TRL logs: rewards, margin, accuracy (paired only), plus the objective's extras.

    For a sum over ranks use the per-example tensors of ``PreferenceOutput`` instead; these are the
    local micro-batch's means.
    """
    metrics: dict[str, float] = {"loss": float(out.loss.detach())}
    chosen, rejected = out.chosen_rewards.float(), out.rejected_rewards.float()
    if chosen.numel():
        metrics["chosen_rewards"] = float(chosen.mean())
    if rejected.numel():
        metrics["rejected_rewards"] = float(rejected.mean())
    if out.paired:
        metrics["reward_accuracy"] = float((chosen > rejected).float().mean())
        metrics["reward_margin"] = float((chosen - rejected).mean())
    elif chosen.numel() and rejected.numel():
        metrics["reward_margin"] = metrics["chosen_rewards"] - metrics["rejected_rewards"]
    metrics.update({name: float(value) for name, value in out.extras.items()})
    return metrics
