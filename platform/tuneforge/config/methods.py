"""Tuning methods: one pydantic model per method, joined in the ``MethodConfig`` discriminated union.

Every method inherits the training objective and its knobs (``config/objective.py``).

Adding a method means adding a member here; the loader and the sweep space read the union's members.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from tuneforge.config.objective import ObjectiveFields


class FullMethod(ObjectiveFields):
    """Full fine-tuning: every weight is trainable."""

    name: Literal["full"] = Field("full", description="Method selector.")


class LoraMethod(ObjectiveFields):
    """LoRA: train low-rank adapters next to frozen weights."""

    name: Literal["lora"] = Field("lora", description="Method selector.")
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA branch.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names that get adapters, or 'all-linear'.",
    )
    use_dora: bool = Field(False, description="Use weight-decomposed LoRA (DoRA).")
    modules_to_save: list[str] = Field(
        default_factory=list, description="Extra modules trained in full and saved with the adapter."
    )


class FreezeMethod(ObjectiveFields):
    """Partial fine-tuning: train chosen layers/modules of the base model in full, freeze the rest.

    Cheaper than ``full`` in optimizer memory (state only for trainable weights) while keeping the saved
    artifact a plain HF model. ``unfreeze_every`` gives gradual unfreezing (ULMFiT style): start from the
    top ``train_top_layers`` layers (1 when null) and unfreeze one more layer downwards every N steps.
    """

    name: Literal["freeze"] = Field("freeze", description="Method selector.")
    train_top_layers: int | None = Field(
        None, ge=0, description="Train the top N transformer blocks (+ the final norm); null = none."
    )
    trainable_modules: list[str] = Field(
        default_factory=list,
        description="Regexes searched in parameter names (e.g. 'mlp\\.down_proj'); matches are trained.",
    )
    train_embeddings: bool = Field(False, description="Train the input token embeddings.")
    train_lm_head: bool = Field(False, description="Train the output projection (lm_head).")
    unfreeze_every: int | None = Field(
        None, ge=1, description="Gradual unfreezing: unfreeze one more block from the top every N steps."
    )

    @field_validator("trainable_modules")
    @classmethod
    def _regexes_compile(cls, value: list[str]) -> list[str]:
        """A bad regex is a config error at submit time, not a crash inside a worker."""
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"invalid regex {pattern!r}: {e}") from None
        return value

    @model_validator(mode="after")
    def _trains_something(self) -> Self:
        """A freeze config that trains no weight would run a whole job for nothing."""
        if not (
            self.train_top_layers
            or self.trainable_modules
            or self.train_embeddings
            or self.train_lm_head
            or self.unfreeze_every
        ):
            raise ValueError(
                "freeze trains nothing: set train_top_layers, trainable_modules, train_embeddings, "
                "train_lm_head or unfreeze_every"
            )
        return self


class QLoraMethod(LoraMethod):
    """QLoRA: LoRA adapters over a base quantized to 4 bits with bitsandbytes (CUDA only)."""

    name: Literal["qlora"] = Field("qlora", description="Method selector.")  # type: ignore[assignment]
    bits: Literal[4] = Field(4, description="Bits per base weight (bitsandbytes 4-bit).")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type; nf4 = NormalFloat4.")
    double_quant: bool = Field(True, description="Also quantize the quantization constants (saves ~0.4 bit).")


class PromptTuningMethod(ObjectiveFields):
    """Prompt tuning: learn ``num_virtual_tokens`` input embeddings prepended to every sequence."""

    name: Literal["prompt_tuning"] = Field("prompt_tuning", description="Method selector.")
    num_virtual_tokens: int = Field(8, ge=1, description="Learned soft-prompt length.")
    init: Literal["random", "text"] = Field(
        "random", description="random = random vocabulary embeddings; text = embeddings of init_text."
    )
    init_text: str | None = Field(
        None, description="Text whose token embeddings start the prompt (init=text)."
    )

    @model_validator(mode="after")
    def _text_needs_text(self) -> Self:
        if self.init == "text" and not self.init_text:
            raise ValueError("init 'text' needs init_text")
        return self


class PrefixTuningMethod(ObjectiveFields):
    """Prefix tuning: learn per-layer key/value prefixes (``num_virtual_tokens`` positions each)."""

    name: Literal["prefix_tuning"] = Field("prefix_tuning", description="Method selector.")
    num_virtual_tokens: int = Field(8, ge=1, description="Prefix length in every attention layer.")
    prefix_projection: bool = Field(
        False, description="Reparameterise the prefix through a 2-layer MLP (more params, steadier training)."
    )
    encoder_hidden_size: int | None = Field(
        None, ge=1, description="Hidden width of the projection MLP; null = the model's hidden size."
    )


class PTuningMethod(ObjectiveFields):
    """P-tuning: virtual-token embeddings produced by a small trained encoder (MLP or LSTM)."""

    name: Literal["p_tuning"] = Field("p_tuning", description="Method selector.")
    num_virtual_tokens: int = Field(8, ge=1, description="Number of virtual tokens prepended.")
    encoder_hidden_size: int | None = Field(
        None, ge=1, description="Hidden width of the prompt encoder; null = the model's hidden size."
    )
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = Field(
        "MLP", description="Prompt encoder: 3-layer MLP, or bidirectional 2-layer LSTM + MLP head."
    )


class IA3Method(ObjectiveFields):
    """IA3: learn per-channel scaling vectors on chosen projections (the fewest trainable weights)."""

    name: Literal["ia3"] = Field("ia3", description="Method selector.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["k_proj", "v_proj", "down_proj"],
        description="Module names whose activations get learned scales.",
    )
    feedforward_modules: list[str] = Field(
        default_factory=lambda: ["down_proj"],
        description="Subset of target_modules scaled on their input (feed-forward) instead of their output.",
    )

    @model_validator(mode="after")
    def _ff_subset(self) -> Self:
        """peft rejects feed-forward modules that are not targets; say so before any work."""
        extra = sorted(set(self.feedforward_modules) - set(self.target_modules))
        if extra:
            raise ValueError(f"feedforward_modules {extra} must also be in target_modules")
        return self


MethodConfig = Annotated[
    FullMethod
    | LoraMethod
    | FreezeMethod
    | QLoraMethod
    | PromptTuningMethod
    | PrefixTuningMethod
    | PTuningMethod
    | IA3Method,
    Field(discriminator="name"),
]
