"""The training objective every method shares: SFT, or a preference loss with its knobs.

Why on the method and not a section of its own: a sweep branch is one method with its knobs, and
"LoRA + DPO at beta 0.1" vs "full + SimPO" are strategies, so ``objective`` and ``beta`` are
searched inside a branch like ``r`` or ``num_virtual_tokens`` (``method: [{name: lora, objective:
{choice: [dpo, simpo]}}]``). Every method class inherits these fields.

The knobs mean what TRL's trainers mean by them (``training/preference_loss.py`` is tested against
TRL on identical inputs); ``reference`` says where a DPO/IPO/KTO reference model's log-probs come
from (ORPO and SimPO need none).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from tuneforge.config.base import _Section

Objective = Literal["sft", "dpo", "ipo", "orpo", "simpo", "kto"]
PREFERENCE_OBJECTIVES: frozenset[str] = frozenset({"dpo", "ipo", "orpo", "simpo", "kto"})
NEEDS_REFERENCE: frozenset[str] = frozenset({"dpo", "ipo", "kto"})
#: Methods whose frozen base is the reference when the adapter is switched off.
ADAPTER_METHODS: frozenset[str] = frozenset(
    {"lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"}
)


class ObjectiveFields(_Section):
    """What the method is trained to minimise (shared by every method)."""

    objective: Objective = Field(
        "sft",
        description="sft = next-token loss on the trained turns; dpo (sigmoid), ipo, orpo, simpo, kto = "
        "preference alignment on preference files (pairs, or labelled replies for kto); see "
        "docs/preference.md.",
    )
    beta: float = Field(
        0.1,
        gt=0,
        description="Preference temperature: DPO/IPO/KTO beta (IPO: the regulariser tau), SimPO's "
        "reward scale.",
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="dpo/simpo: assumed share of flipped preference labels (cDPO)."
    )
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: target reward margin (TRL's simpo_gamma).")
    orpo_lambda: float = Field(
        0.1, gt=0, description="orpo: weight of the odds-ratio term over the SFT loss."
    )
    kto_desirable_weight: float = Field(1.0, gt=0, description="kto: loss weight of desirable replies.")
    kto_undesirable_weight: float = Field(1.0, gt=0, description="kto: loss weight of undesirable replies.")
    reference: Literal["auto", "adapter_disabled", "precomputed", "model"] = Field(
        "auto",
        description="dpo/ipo/kto reference log-probs: adapter_disabled = the base under the adapter, "
        "switched off for a no-grad forward each step (adapter methods only); precomputed = the base "
        "model scores every pair once in a Ray Data pass and the log-probs stream with the batch "
        "(cached with the tokenized data); model = a frozen copy of the base on every worker, a "
        "no-grad forward each step (partitioned over the ranks under ZeRO-3, like the policy). "
        "auto = adapter_disabled for adapters, precomputed for full and freeze.",
    )

    @model_validator(mode="after")
    def _reference_fits_method(self) -> Self:
        """A full or freeze run has no adapter to switch off: its reference is precomputed or a copy."""
        name = getattr(self, "name", "")
        if self.reference == "adapter_disabled" and name not in ADAPTER_METHODS:
            adapters = ", ".join(sorted(ADAPTER_METHODS))
            raise ValueError(
                f"reference 'adapter_disabled' needs an adapter method ({adapters}); {name} trains "
                "the base weights themselves: use reference 'precomputed' or 'model'"
            )
        return self

    @property
    def is_preference(self) -> bool:
        """Whether this method trains on preference data (pairs or labelled replies)."""
        return self.objective in PREFERENCE_OBJECTIVES

    def resolved_reference(self) -> Literal["none", "adapter_disabled", "precomputed", "model"]:
        """Where reference log-probs come from for this method + objective ("none": not needed)."""
        if self.objective not in NEEDS_REFERENCE:
            return "none"
        if self.reference != "auto":
            return self.reference
        return "adapter_disabled" if getattr(self, "name", "") in ADAPTER_METHODS else "precomputed"
