"""Typed job spec: every knob of a fine-tuning job, validated by pydantic.

The models are deliberately strict (unknown keys are errors) so that a typo in a YAML file fails at
submit time on the driver instead of being silently ignored on a remote Ray worker.

Over 300 lines on purpose: it is the whole job schema, one section class after another, each field
with its description; the method sections are in ``config/methods.py``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from tuneforge.config.base import _Section
from tuneforge.config.methods import (
    FreezeMethod,
    FullMethod,
    IA3Method,
    LoraMethod,
    MethodConfig,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
    QLoraMethod,
)

__all__ = [
    "FreezeMethod",
    "FullMethod",
    "IA3Method",
    "LoraMethod",
    "MethodConfig",
    "PrefixTuningMethod",
    "PromptTuningMethod",
    "PTuningMethod",
    "QLoraMethod",
]


class TinyModelConfig(_Section):
    """A randomly initialised model built from a config, so demos and tests need no download."""

    architecture: Literal["llama"] = Field("llama", description="Model family of the tiny model.")
    vocab_size: int = Field(
        512, ge=64, description="Vocabulary size (also the size of the trained tokenizer)."
    )
    hidden_size: int = Field(64, ge=1, description="Width of the hidden states.")
    intermediate_size: int = Field(128, ge=1, description="Width of the MLP inner layer.")
    num_hidden_layers: int = Field(2, ge=1, description="Number of transformer blocks.")
    num_attention_heads: int = Field(4, ge=1, description="Number of attention heads.")
    num_key_value_heads: int | None = Field(
        None, ge=1, description="Key/value heads for grouped-query attention; null = num_attention_heads."
    )
    max_position_embeddings: int = Field(512, ge=1, description="Longest sequence the model can attend over.")

    @model_validator(mode="after")
    def _check_heads(self) -> Self:
        """Catch shapes transformers would reject only later, inside a Ray worker."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        kv_heads = self.num_key_value_heads
        if kv_heads is not None and self.num_attention_heads % kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({kv_heads})"
            )
        return self


class RopeScalingConfig(_Section):
    """RoPE scaling for fine-tuning at a longer context than the base model was trained on."""

    type: Literal["linear", "dynamic", "yarn"] = Field(
        description="linear = position interpolation; dynamic = NTK-aware base rescaling past the base "
        "length; yarn = YaRN (interpolation by frequency band + attention temperature)."
    )
    factor: float = Field(
        gt=1, description="Context multiplier: new length = base max_position_embeddings x factor."
    )


class ModelConfig(_Section):
    """Which model to fine-tune and how to load it."""

    name_or_path: str | None = Field(
        None,
        description="Local Hugging Face model directory, a .gguf file (converted once to a cached HF "
        "directory), or pkg:<package>/<file> for a file inside an installed package; null builds the "
        "random-init `tiny` model.",
    )
    tiny: TinyModelConfig = Field(
        default_factory=TinyModelConfig,
        description="Shape of the tiny model (used when name_or_path is null).",
    )
    tokenizer: str | None = Field(
        None,
        description="Local tokenizer directory; default: name_or_path, or for the tiny model a BPE tokenizer "
        "trained on the train data.",
    )
    trust_remote_code: bool = Field(False, description="Allow custom modelling code shipped with the model.")
    allow_pickle: bool = Field(
        False,
        description="Load pickle weight files (.bin/.pt/.pth) when the model directory has no safetensors; "
        "unpickling can run code, so only for directories you trust (a warning is logged).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"] = Field(
        "auto",
        description="Precision: float32; bfloat16/float16 weights (fp32 master copy); bf16-mixed = fp32 "
        "weights with bf16 autocast. auto = bfloat16 on GPU, bf16-mixed on CPUs with AVX512-BF16/AMX, "
        "else float32 (models/precision.py).",
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        "auto", description="Attention kernel; auto lets transformers pick."
    )
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Override every dropout probability the model config has (Llama: attention_dropout); "
        "null keeps the base model's values.",
    )
    rope_scaling: RopeScalingConfig | None = Field(
        None,
        description="Extend the context window with RoPE scaling, e.g. {type: linear, factor: 2}; "
        "null keeps the base model's position encoding.",
    )


class DatasetSpec(_Section):
    """One data file and how to read it."""

    path: str = Field(
        description="Data file (.jsonl, .json, .parquet, .txt; local path or fsspec URL such as s3://), "
        "or a LLaMA-Factory dataset_info.json catalog (with `name`, or as path#name)."
    )
    format: Literal["auto", "openai", "alpaca", "sharegpt", "text"] = Field(
        "auto", description="Record layout; auto detects it per file from the first record."
    )
    name: str | None = Field(None, description="Entry of a dataset_info.json catalog given as `path`.")
    weight: float | None = Field(
        None,
        gt=0,
        description="Relative share of the training mix (set on every train file or on none; none keeps "
        "the files' natural proportions). See docs/data.md.",
    )

    @model_validator(mode="before")
    @classmethod
    def _path_shorthand(cls, data: Any) -> Any:
        """Let YAML list a file as a bare string instead of {path: ...}; `dataset_info.json#name` = name."""
        data = {"path": data} if isinstance(data, str) else data
        if isinstance(data, dict) and isinstance(data.get("path"), str) and "#" in data["path"]:
            path, _, entry = data["path"].partition("#")
            if path.replace("\\", "/").rsplit("/", 1)[-1] == "dataset_info.json" and not data.get("name"):
                data = {**data, "path": path, "name": entry}
        return data


class ModeSource(_Section):
    """Training data built for a tuning mode (tuneforge.modes) from source files, before planning."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True, populate_by_name=True)

    mode: str = Field(description="Tuning mode, e.g. editor, instruct, diff (`tuneforge modes list`).")
    sources: list[str] = Field(alias="from", description="Source files in the form the mode's builder takes.")
    weight: float | None = Field(None, gt=0, description="Relative share of the training mix.")
    seed: int = Field(0, description="Seed for synthetic builders.")
    limit: int | None = Field(None, ge=1, description="Build at most this many records.")
    options: dict[str, str] = Field(default_factory=dict, description="Builder knobs, e.g. {ratio: '0.3'}.")

    @field_validator("sources", mode="before")
    @classmethod
    def _one_source(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DataConfig(_Section):
    """Training and evaluation data, and how records become token sequences."""

    train_files: list[DatasetSpec] = Field(
        default_factory=list, description="Training data files (at least one here or in `modes`)."
    )
    modes: list[ModeSource] = Field(
        default_factory=list,
        description="Tuning modes built into training files before the run, e.g. "
        "[{mode: editor, from: [src.txt, ref.txt], weight: 0.5}]; see docs/modes.md.",
    )

    @model_validator(mode="after")
    def _some_training_data(self) -> Self:
        """Train files and mode sources form one mix: need one of them, weights on all or none."""
        if not self.train_files and not self.modes:
            raise ValueError("train_files: give at least one training file (or a `modes` entry)")
        sources: tuple[DatasetSpec | ModeSource, ...] = (*self.train_files, *self.modes)
        weighted = [s.weight is not None for s in sources]
        if self.modes and any(weighted) and not all(weighted):
            raise ValueError("modes: set weight on every train file and mode source, or on none")
        return self

    eval_files: list[DatasetSpec] = Field(
        default_factory=list,
        description="Evaluation data files; if empty, a held-out split of train chosen by content hash.",
    )
    eval_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of train records held out for eval when eval_files is empty."
    )
    template: Literal["auto", "chatml", "tokenizer", "llama3", "alpaca"] = Field(
        "auto",
        description="Chat template: auto = the tokenizer's own chat_template if it has one, else chatml; "
        "tokenizer = require the tokenizer's; or a named text template.",
    )
    packing: bool = Field(True, description="Pack several short records into each max_seq_len sequence.")
    train_on_prompt: bool = Field(
        False, description="Also compute the loss on prompt tokens, not only answers."
    )
    last_turn_only: bool = Field(
        False, description="Compute the loss only on the last trained assistant turn of each record."
    )
    truncation: Literal["truncate", "drop"] = Field(
        "truncate", description="What to do with records longer than max_seq_len."
    )
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A bad record stops the run (error) or is skipped, counted and reported (skip)."
    )
    dedup: bool = Field(
        True, description="Drop exact duplicate records (same content hash) across all files."
    )
    near_dedup: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Also drop near-duplicates: records whose word 5-grams overlap an earlier record's "
        "at this Jaccard similarity or more (MinHash LSH), e.g. 0.85; off when unset.",
    )
    max_records: int | None = Field(
        None, ge=1, description="Use at most this many train records (for quick runs)."
    )
    cache: bool = Field(
        True, description="Reuse tokenized data from an earlier run with the same inputs and settings."
    )
    cache_dir: str | None = Field(
        None,
        description="Where tokenized data is cached (default <TUNEFORGE_HOME>/cache/tokenized); on a "
        "cluster, a path every node can read.",
    )

    @field_validator("train_files", "eval_files", mode="before")
    @classmethod
    def _single_file_shorthand(cls, value: Any) -> Any:
        """Let `data.train_files=a.jsonl` mean a one-file list."""
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _weights_all_or_none(self) -> Self:
        """Weights are shares of the mix, so a mix with some files unweighted would be ambiguous."""
        set_ = [s.weight is not None for s in self.train_files]
        if any(set_) and not all(set_):
            missing = ", ".join(s.path for s in self.train_files if s.weight is None)
            raise ValueError(f"train_files: set weight on every file or on none (no weight: {missing})")
        return self


class EarlyStoppingConfig(_Section):
    """Stop when the eval metric has not improved for ``patience`` consecutive evaluations."""

    metric: Literal["eval_loss"] = Field("eval_loss", description="Metric watched (lower is better).")
    patience: int = Field(2, ge=1, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(
        0.0, ge=0, description="An evaluation improves only if it beats the best so far by more than this."
    )


class TrainerConfig(_Section):
    """Optimisation loop settings."""

    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; null derives it from num_epochs.")
    num_epochs: int = Field(1, ge=1, description="Passes over the train data when max_steps is null.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "cosine",
        description="LR shape after warmup: linear and cosine decay to 0; constant takes no warmup.",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Warmup as a share of all steps (rounded up); excludes warmup_steps."
    )
    micro_batch_size: int = Field(
        4,
        ge=1,
        description="Sequences per worker per forward pass; `auto` = the largest power of two (up to 32) "
        "that the memory planner finds fits the worker (`tuneforge plan`).",
    )
    micro_batch_size_auto: bool = Field(
        False,
        description="Set by `micro_batch_size: auto`: the planner picks micro_batch_size before training.",
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    max_seq_len: int = Field(256, ge=1, description="Tokens per training sequence.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Max global gradient norm; null disables clipping."
    )
    eval_every: int = Field(
        0, ge=0, description="Evaluate every N steps; 0 = only before and after training."
    )
    log_every: int = Field(10, ge=1, description="Log metrics every N steps.")
    checkpoint_every: int = Field(
        0, ge=0, description="Save a resumable checkpoint every N steps; 0 = only the final export."
    )
    keep_last: int = Field(2, ge=1, description="Resumable checkpoints kept: the newest N ...")
    keep_best: int = Field(1, ge=0, description="... plus the N with the lowest eval loss.")
    batch_ledger: str | None = Field(
        None,
        description="Directory where each rank appends a line per trained micro-batch (step, index, "
        "token fingerprint): an audit that a resumed run neither repeats nor skips data.",
    )
    seed: int = Field(42, description="Seed for data order, splits, weight init and dropout.")
    deterministic: bool = Field(
        False, description="Use deterministic kernels too (bit-identical reruns on GPU; slower)."
    )
    compile: bool = Field(
        False,
        description="torch.compile the model inside the DeepSpeed engine (engine.compile()). Off by "
        "default: on CPU its minute-long compile did not pay for itself (docs/performance.md).",
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="Stop when eval stops improving, e.g. {patience: 2}; needs eval_every > 0."
    )
    output_dir: str | None = Field(
        None, description="Run output directory; null = .tuneforge/runs/<run name>."
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_micro_batch(cls, data: Any) -> Any:
        """`micro_batch_size: auto` -> a flag the planner resolves (1 until then), so readers keep an int."""
        if isinstance(data, dict) and data.get("micro_batch_size") == "auto":
            data = {**data, "micro_batch_size": 1, "micro_batch_size_auto": True}
        return data

    @model_validator(mode="after")
    def _check_schedule(self) -> Self:
        """Reject combinations that would silently do something other than what was written."""
        if self.warmup_ratio is not None and self.warmup_steps:
            raise ValueError("set either warmup_steps or warmup_ratio, not both")
        if self.lr_scheduler == "constant" and (self.warmup_steps or self.warmup_ratio):
            raise ValueError("lr_scheduler 'constant' has no warmup; use 'constant_with_warmup'")
        if self.early_stopping is not None and not self.eval_every:
            raise ValueError("early_stopping needs eval_every > 0 (it decides at each evaluation)")
        return self


class DistributedConfig(_Section):
    """Ray Train workers and DeepSpeed ZeRO settings."""

    num_workers: int = Field(2, ge=1, description="Number of Ray Train workers (data-parallel ranks).")
    use_gpu: bool = Field(False, description="Give each worker one GPU.")
    zero_stage: Literal[0, 1, 2, 3] = Field(
        2,
        description="DeepSpeed ZeRO stage; 0 = plain data parallel; `auto` = the lowest stage (and, when "
        "no offload is set, offload) that the memory planner finds fits the workers (`tuneforge plan`).",
    )
    zero_stage_auto: bool = Field(
        False, description="Set by `zero_stage: auto`: the planner picks zero_stage before training."
    )
    offload_optimizer: bool = Field(
        False, description="Keep optimizer state in CPU memory (needs zero_stage >= 1)."
    )
    offload_params: bool = Field(False, description="Keep parameters in CPU memory (needs zero_stage 3).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker.")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK",
        description="How Ray places the workers on nodes: PACK fills a node first (fast collectives); "
        "SPREAD/STRICT_SPREAD put them on different nodes (one node's loss costs one worker).",
    )
    threads_per_worker: int | None = Field(
        None,
        ge=1,
        description="Compute threads per worker (torch intra-op); unset = the node's cores shared "
        "evenly among this job's workers on it (Ray's OMP_NUM_THREADS follows the CPU reservation, "
        "which leaves cores idle once data preparation is done).",
    )
    max_failures: int = Field(
        3,
        ge=-1,
        description="Worker-group restarts on failure, each from the last checkpoint; -1 = unlimited.",
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_stage(cls, data: Any) -> Any:
        """`zero_stage: auto` -> a flag the planner resolves (a stage the offload allows until then)."""
        if isinstance(data, dict) and data.get("zero_stage") == "auto":
            stage = 3 if data.get("offload_params") in (True, "true", "True") else 2
            data = {**data, "zero_stage": stage, "zero_stage_auto": True}
        return data

    @model_validator(mode="after")
    def _check_offload(self) -> Self:
        """DeepSpeed only offloads what the chosen ZeRO stage partitions."""
        if self.offload_params and self.zero_stage != 3:
            raise ValueError(f"offload_params requires zero_stage 3 (got zero_stage {self.zero_stage})")
        if self.offload_optimizer and self.zero_stage < 1:
            raise ValueError("offload_optimizer requires zero_stage >= 1 (got zero_stage 0)")
        return self


class TrackingConfig(_Section):
    """Where MLflow records the run."""

    uri: str | None = Field(
        None, description="MLflow tracking URI; null = $MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow.db."
    )
    experiment: str = Field("tuneforge", description="MLflow experiment name.")
    run_name: str | None = Field(None, description="MLflow run name; null generates one.")


class RegistryConfig(_Section):
    """Model registry settings."""

    model_name: str | None = Field(
        "tuneforge-tiny", description="Registered model name for the result; null = do not register."
    )
    promote: bool = Field(
        False, description="After registering, run the promotion gate against the current champion."
    )
    promote_metric: str = Field("eval_loss", description="Primary metric of the promotion gate.")
    min_delta: float = Field(0.0, ge=0, description="Smallest improvement over the champion that counts.")


class JobConfig(_Section):
    """A complete fine-tuning job."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="Model to fine-tune.")
    data: DataConfig = Field(description="Training and evaluation data.")
    method: MethodConfig = Field(
        default_factory=FullMethod, description="Fine-tuning method, chosen by name."
    )
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Optimisation loop.")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="Ray Train workers and DeepSpeed."
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="MLflow model registry.")

    @model_validator(mode="after")
    def _preference_data(self) -> Self:
        """Mode builders write SFT chats; a preference objective needs pairs (or labelled replies)."""
        if self.method.is_preference and self.data.modes:
            raise ValueError(
                f"data.modes builds SFT chats, but method.objective is {self.method.objective}: give "
                "preference files in data.train_files (docs/preference.md lists the formats)"
            )
        return self

    @model_validator(mode="after")
    def _check_context_length(self) -> Self:
        """A tiny model's length is known on the driver: refuse sequences its positions cannot cover.

        A local base model's length is only known once its config is read; ``models.factory`` applies
        the scaling there.
        """
        tiny, rope = self.model.tiny, self.model.rope_scaling
        if self.model.name_or_path is None:
            limit = tiny.max_position_embeddings * (rope.factor if rope else 1)
            if self.trainer.max_seq_len > limit:
                raise ValueError(
                    f"trainer.max_seq_len ({self.trainer.max_seq_len}) exceeds the tiny model's context "
                    f"({int(limit)} = max_position_embeddings x rope factor); set model.rope_scaling "
                    "or raise model.tiny.max_position_embeddings"
                )
        return self
