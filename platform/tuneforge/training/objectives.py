"""What one micro-batch costs and what an evaluation reports, per training objective.

The step loop (``training/loop.py``) is the same state machine for every objective: it asks the
objective for a micro-batch's loss (to ``backward``) and for the evaluation metrics (``eval_loss``
plus extras) and leaves the rest (cadence, checkpoints, resume, reports) alone.

- ``SftObjective``: the model's own next-token loss on packed or padded rows (labels -100 outside
  the trained turns); ``eval_loss`` is token-weighted over all ranks.
- ``PreferenceObjective``: DPO / IPO / ORPO / SimPO on paired rows (``chosen_*`` / ``rejected_*``
  columns) and KTO on labelled replies (``completion_*`` + ``kto_label``, with ``kl_*`` mismatched
  pairs for its KL estimate). Chosen and rejected go through one concatenated forward (one
  collective under ZeRO-3, not two). Reference log-probs come from the batch (``ref_*`` columns,
  precomputed once by the data pipeline), from the same model with its adapter switched off
  (``adapter_disabled``) or from a frozen copy of the base (``model``, ``training/reference.py``).
  ``eval_loss`` is the pair-weighted preference loss, so early stopping, checkpoint retention and a
  sweep's scheduler rank preference runs like any other.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as dist

from tuneforge.config.methods import MethodConfig
from tuneforge.data import to_model_inputs
from tuneforge.training.engine import TrainingEngine
from tuneforge.training.eval_shards import is_padding, without_padding_key
from tuneforge.training.preference_loss import (
    PreferenceKnobs,
    PreferenceOutput,
    kto_loss,
    paired_loss,
    sequence_logps,
)
from tuneforge.training.reference import ReferenceModel

Batch = Mapping[str, torch.Tensor]


@dataclass
class StepOutput:
    """One micro-batch's loss (to backward), its tokens (throughput) and the ids the ledger records."""

    loss: torch.Tensor
    tokens: float
    ids: torch.Tensor


class TrainingObjective(Protocol):
    """The loss of a micro-batch and the metrics of an evaluation pass (all ranks call both)."""

    def step(self, engine: TrainingEngine, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Forward one micro-batch in training mode and return its loss."""

    def evaluate(
        self, engine: TrainingEngine, batches: Iterable[Batch], device: torch.device
    ) -> dict[str, float]:
        """``eval_loss`` (lower is better) and any extra metrics, reduced over every rank."""


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum ``values`` over the process group (identity when there is none)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def _mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """KTO's KL estimate averaged over ranks before clamping, as TRL does (identity without a group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    out = value.detach().clone().to(torch.float64)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / dist.get_world_size()).to(value.dtype)


def _to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class SftObjective:
    """Next-token cross-entropy on the trained tokens (the model computes it from ``labels``)."""

    def step(self, engine: TrainingEngine, batch: dict[str, torch.Tensor]) -> StepOutput:
        loss = engine(**to_model_inputs(batch)).loss
        # to_model_inputs keeps the mask when the batch has one (padded rows); packed rows are all tokens
        mask = batch.get("attention_mask")
        tokens = float(batch["input_ids"].numel() if mask is None else mask.sum())
        return StepOutput(loss, tokens, batch["input_ids"])

    @torch.no_grad()
    def evaluate(
        self, engine: TrainingEngine, batches: Iterable[Batch], device: torch.device
    ) -> dict[str, float]:
        """Token-weighted mean loss over all ranks' eval shards.

        Every batch is forwarded, counted or not: under ZeRO-3 a forward pass gathers parameters
        collectively, so each rank runs as many as the others (``eval_shards.lockstep_shard`` pads the
        shorter shards with batches that are not counted; a batch with no trained token counts nothing).
        """
        engine.eval()
        loss_sum = n_tokens = 0.0
        for batch in batches:
            counted = not is_padding(batch)
            on_device = _to_device(without_padding_key(batch), device)
            n = float((on_device["labels"][:, 1:] != -100).sum()) if counted else 0.0
            loss = engine(**to_model_inputs(on_device)).loss
            if n:
                loss_sum += float(loss.float()) * n
                n_tokens += n
        engine.train()
        total_loss, total_tokens = all_reduce_sum([loss_sum, n_tokens], device)
        return {"eval_loss": total_loss / total_tokens if total_tokens else math.nan}


def knobs_of(method: MethodConfig) -> PreferenceKnobs:
    """The loss knobs of a method section (the names are the config's, the meanings TRL's)."""
    return PreferenceKnobs(
        beta=method.beta,
        label_smoothing=method.label_smoothing,
        simpo_gamma=method.simpo_gamma,
        orpo_lambda=method.orpo_lambda,
        kto_desirable_weight=method.kto_desirable_weight,
        kto_undesirable_weight=method.kto_undesirable_weight,
    )


def _logits(engine: TrainingEngine, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The logits of the real tokens: prompt tuning and P-tuning prepend virtual-token positions."""
    logits: torch.Tensor = engine(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[:, -ids.shape[1] :]


def _logps(
    engine: TrainingEngine, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed reply log-probs and reply token counts per row (float32 log-softmax, row by row)."""
    return sequence_logps(_logits(engine, ids, mask), labels)


class PreferenceObjective:
    """A preference loss over the batch's replies, against a reference where the objective has one."""

    def __init__(self, method: MethodConfig, reference_model: ReferenceModel | None = None) -> None:
        self.objective = method.objective
        self.knobs = knobs_of(method)
        self.reference = method.resolved_reference()
        if (self.reference == "model") != (reference_model is not None):
            raise ValueError(f"reference {self.reference!r} and a reference model go together")
        self.reference_model = reference_model
        #: the last forward's summed reply log-probs (chosen/desirable, rejected/undesirable), detached
        self.last_logps: tuple[torch.Tensor, torch.Tensor] = (torch.zeros(0), torch.zeros(0))

    def _reference_off(self, engine: TrainingEngine) -> contextlib.AbstractContextManager[None]:
        """The adapter switched off: the frozen base is the reference (peft's ``disable_adapter``)."""
        peft_model: Any = engine.module
        return peft_model.disable_adapter()  # type: ignore[no-any-return]

    def _ref(
        self, engine: TrainingEngine, batch: dict[str, torch.Tensor], prefixes: tuple[str, ...]
    ) -> list[torch.Tensor]:
        """Reference summed log-probs per column prefix: the batch's, a frozen copy's or adapter-off's."""
        if self.reference == "precomputed":
            return [batch[f"ref_{p}_logps"].float() for p in prefixes]
        ids = torch.cat([batch[f"{p}_input_ids"] for p in prefixes])
        labels = torch.cat([batch[f"{p}_labels"] for p in prefixes])
        mask = torch.cat([batch[f"{p}_attention_mask"] for p in prefixes])
        if self.reference_model is not None:
            logps, _ = sequence_logps(self.reference_model.logits(ids, mask), labels)
            return list(logps.chunk(len(prefixes)))
        with torch.no_grad(), self._reference_off(engine):
            logps, _ = _logps(engine, ids, labels, mask)
        return list(logps.chunk(len(prefixes)))

    def forward(self, engine: TrainingEngine, batch: dict[str, torch.Tensor]) -> PreferenceOutput:
        """The loss and rewards of one batch (grads flow through the policy's log-probs only)."""
        batch = _trimmed(batch)
        if self.objective == "kto":
            ids = torch.cat([batch["completion_input_ids"], batch["kl_input_ids"]])
            labels = torch.cat([batch["completion_labels"], batch["kl_labels"]])
            mask = torch.cat([batch["completion_attention_mask"], batch["kl_attention_mask"]])
            logps, _ = _logps(engine, ids, labels, mask)
            policy, kl = logps.chunk(2)
            good = batch["kto_label"].bool()
            self.last_logps = (policy.detach()[good], policy.detach()[~good])
            ref, ref_kl = self._ref(engine, batch, ("completion", "kl"))
            return kto_loss(
                self.knobs, logps=policy, ref_logps=ref, kl_logps=kl.detach(), ref_kl_logps=ref_kl,
                desirable=batch["kto_label"].bool(), kl_reduce=_mean_over_ranks,
            )  # fmt: skip
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
        labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
        mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]])
        logits = _logits(engine, ids, mask)
        logps, counts = sequence_logps(logits, labels)
        chosen, rejected = logps.chunk(2)
        self.last_logps = (chosen.detach(), rejected.detach())
        n_chosen, n_rejected = counts.chunk(2)
        refs: list[torch.Tensor | None] = [None, None]
        if self.reference != "none":
            refs = list(self._ref(engine, batch, ("chosen", "rejected")))
        nll: tuple[torch.Tensor, torch.Tensor] | tuple[None, None] = (None, None)
        if self.objective == "orpo":  # TRL's ORPO NLL: the whole chosen sequence, prompt included
            b = batch["chosen_input_ids"].shape[0]
            whole = batch["chosen_input_ids"].masked_fill(batch["chosen_attention_mask"] == 0, -100)
            nll = sequence_logps(logits[:b], whole)
        return paired_loss(
            self.objective, self.knobs, chosen_logps=chosen, rejected_logps=rejected,
            chosen_tokens=n_chosen, rejected_tokens=n_rejected,
            ref_chosen_logps=refs[0], ref_rejected_logps=refs[1],
            chosen_nll_logps=nll[0], chosen_nll_tokens=nll[1],
        )  # fmt: skip

    def step(self, engine: TrainingEngine, batch: dict[str, torch.Tensor]) -> StepOutput:
        out = self.forward(engine, batch)
        first = "completion" if self.objective == "kto" else "chosen"
        masks = [v for k, v in batch.items() if k.endswith("_attention_mask")]
        return StepOutput(out.loss, float(sum(float(m.sum()) for m in masks)), batch[f"{first}_input_ids"])

    @torch.no_grad()
    def evaluate(
        self, engine: TrainingEngine, batches: Iterable[Batch], device: torch.device
    ) -> dict[str, float]:
        """Pair-weighted loss, reward accuracy and margin, mean rewards and mean summed reply log-probs.

        KTO has no pairs: its accuracy is the share of replies whose reward has the label's sign
        (desirable > 0, undesirable < 0) and its margin is the mean desirable minus the mean
        undesirable reward.
        """
        engine.eval()
        sums = [0.0] * 10
        for batch in batches:
            on_device = _to_device(without_padding_key(batch), device)
            out = self.forward(engine, on_device)  # padding too: ZeRO-3 forwards are collectives
            if is_padding(batch):
                continue
            terms = [*_eval_terms(out, self.objective, on_device), *(float(x.sum()) for x in self.last_logps)]
            for i, value in enumerate(terms):
                sums[i] += value
        engine.train()
        (loss, n, correct, margin, chosen_r, n_chosen, rejected_r, n_rejected, chosen_lp, rejected_lp) = (
            all_reduce_sum(sums, device)
        )
        if not n:
            return {"eval_loss": math.nan}
        return {
            "eval_loss": loss / n,
            "eval_reward_accuracy": correct / n,
            "eval_reward_margin": margin / n if self.objective != "kto" else
            chosen_r / max(n_chosen, 1) - rejected_r / max(n_rejected, 1),
            "eval_rewards_chosen": chosen_r / max(n_chosen, 1),
            "eval_rewards_rejected": rejected_r / max(n_rejected, 1),
            "eval_logps_chosen": chosen_lp / max(n_chosen, 1),
            "eval_logps_rejected": rejected_lp / max(n_rejected, 1),
        }  # fmt: skip


def _trimmed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rows cut to the batch's longest real sequence: right padding past it changes no log-prob.

    Rows are stored padded to ``max_seq_len``; a batch of short pairs would otherwise pay for the
    whole width in every forward (all ranks trim alike only in shape, which is all a forward needs).
    """
    masks = [v for k, v in batch.items() if k.endswith("_attention_mask")]
    width = max(2, max(int(m.sum(-1).max()) for m in masks))
    return {k: v[:, :width] if v.dim() == 2 and not k.startswith("ref_") else v for k, v in batch.items()}


def _eval_terms(out: PreferenceOutput, objective: str, batch: dict[str, torch.Tensor]) -> Iterator[float]:
    """Per-batch sums: loss, examples, correct, margin, chosen rewards (+n), rejected rewards (+n)."""
    n = out.chosen_rewards.shape[0] if objective != "kto" else batch["kto_label"].shape[0]
    yield float(out.loss.float()) * n
    yield float(n)
    if objective == "kto":  # chosen_rewards: the desirable replies', rejected_rewards: the others'
        yield float((out.chosen_rewards > 0).sum() + (out.rejected_rewards < 0).sum())
        yield 0.0
        yield float(out.chosen_rewards.sum())
        yield float(out.chosen_rewards.numel())
        yield float(out.rejected_rewards.sum())
        yield float(out.rejected_rewards.numel())
        return
    yield float((out.chosen_rewards > out.rejected_rewards).sum())
    yield float((out.chosen_rewards - out.rejected_rewards).sum())
    yield float(out.chosen_rewards.sum())
    yield float(n)
    yield float(out.rejected_rewards.sum())
    yield float(n)


def objective_for(method: MethodConfig, reference_model: ReferenceModel | None = None) -> TrainingObjective:
    """The objective a method section trains with (``reference_model``: for ``reference: model``)."""
    return PreferenceObjective(method, reference_model) if method.is_preference else SftObjective()
