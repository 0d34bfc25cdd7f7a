"""Test support: the Ray-free training blocks in N local processes, for tests, benchmarks and debugging.

``run_loop`` and ``setup_engine`` only need a ``torch.distributed`` process group, which is what Ray
Train provides on a cluster. Here ``torch.multiprocessing`` spawns the ranks on one machine with
gloo over loopback, so the engine and loop can be exercised (and timed) without starting Ray.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tuneforge.config import TinyModelConfig, TrainerConfig
from tuneforge.net import free_port

T = TypeVar("T")

#: The tiny Llama shape tests use when the shape itself does not matter (pass ``len(tokenizer)`` as
#: the vocabulary to ``build_tiny_model``): 2 blocks of width 32, 4 heads; builds in milliseconds.
TINY_MODEL = TinyModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)

#: What ``toy_tokenizer`` is trained on: ChatML turns with numbers, so chat prompts encode compactly.
TOY_TEXTS: tuple[str, ...] = tuple(
    f"<|im_start|>user\nhello world {i}<|im_end|>\n<|im_start|>assistant\nhi {i}<|im_end|>\n"
    f"<|im_start|>user\nWhat is {i} plus {i % 5}?<|im_end|>\n<|im_start|>assistant\n{i + i % 5}<|im_end|>\n"
    for i in range(30)
)
TOY_VOCAB = 300


@functools.cache
def _trained_toy_tokenizer() -> Any:
    from tuneforge.models.tokenizer import train_bpe_tokenizer  # tokenizers, transformers: only when used

    return train_bpe_tokenizer(TOY_TEXTS, TOY_VOCAB)


def toy_tokenizer(out_dir: str | Path | None = None) -> Any:
    """A byte-level BPE tokenizer (vocabulary 300, ChatML specials), trained once per process.

    Each call returns its own copy (tests may change ``padding_side`` and the like); with ``out_dir``
    it is also saved there, for code that loads a tokenizer directory.
    """
    tok = copy.deepcopy(_trained_toy_tokenizer())
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def init_process_group(rank: int, world_size: int, port: int) -> None:
    """Join a gloo group on 127.0.0.1 with the env vars DeepSpeed reads (it wraps this group)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def _entry(
    rank: int,
    fn: Callable[..., object],
    world_size: int,
    port: int,
    threads: int,
    out: str,
    args: tuple[Any, ...],
) -> None:
    torch.set_num_threads(threads)
    init_process_group(rank, world_size, port)
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., T], world_size: int, *args: Any, threads: int | None = None) -> list[T]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` fresh processes; return each rank's result.

    ``fn`` must be importable by module path (spawned children re-import it) and its result must be
    ``torch.save``-able. Each rank gets ``threads`` intra-op threads, by default an equal share of
    the cores, as Ray Train does through ``OMP_NUM_THREADS``: oversubscribed cores would make
    every timing meaningless.
    """
    threads = threads or max(1, (os.cpu_count() or 1) // world_size)
    out = tempfile.mkdtemp(prefix="tuneforge-spawn-")
    try:
        # torch.multiprocessing.spawn has no annotations in torch's sources.
        spawn_args = (fn, world_size, free_port(), threads, out, args)
        mp.spawn(_entry, args=spawn_args, nprocs=world_size, join=True)  # type: ignore[no-untyped-call]
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
    finally:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class RecordingReporter:
    """A ``Reporter`` that keeps everything in memory; with ``keep_dir`` it copies the last checkpoint.

    ``report`` is a barrier in Ray Train; here the loop's own collectives keep ranks in step.
    """

    keep_dir: Path | None = None
    logged: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    reports: list[dict[str, float]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((step, dict(metrics)))

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, name: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is None:
            return
        self.checkpoints.append(checkpoint_dir.name)
        if self.keep_dir is not None:
            if self.keep_dir.exists():
                shutil.rmtree(self.keep_dir)
            shutil.copytree(checkpoint_dir, self.keep_dir)


class NullTokenizer:
    """Stands in for a tokenizer when batches are already token ids (checkpoints then hold none)."""

    def save_pretrained(self, directory: str | Path) -> None:
        """Nothing to save."""


def shard_batches(
    global_batches: Sequence[dict[str, torch.Tensor]], rank: int, world_size: int, micro_batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Rank ``rank``'s micro-batches, in order, from a list of global batches.

    Rows ``[rank * n, (rank + 1) * n)`` of every global batch (``n`` = its rows / world size) belong to
    the rank, cut into micro-batches of ``micro_batch_size`` rows: with grad_accum k the k micro-batches
    of one optimizer step together are the rank's share of one global batch, whatever k is.
    """
    for batch in global_batches:
        rows = next(iter(batch.values())).shape[0]
        n = rows // world_size
        for start in range(rank * n, (rank + 1) * n, micro_batch_size):
            yield {k: v[start : start + micro_batch_size] for k, v in batch.items()}


def synthetic_batches(
    n_batches: int, rows: int, seq_len: int, vocab_size: int, seed: int, direction: int = 1
) -> list[dict[str, torch.Tensor]]:
    """Learnable token sequences: each row counts from a random start in steps of ``direction``.

    Every label is trained (no -100), so every micro-batch holds the same number of loss tokens and
    a mean of micro-batch mean losses equals the mean over the whole batch. One document per row:
    ``position_ids`` restart at 0 in each row, the packed-batch layout the loop expects.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        start = torch.randint(0, vocab_size, (rows, 1), generator=g)
        ids = (start + direction * torch.arange(seq_len)) % vocab_size
        positions = torch.arange(seq_len).repeat(rows, 1)
        out.append({"input_ids": ids, "labels": ids.clone(), "position_ids": positions})
    return out


def synthetic_pairs(
    rows: int, seq_len: int, prompt_len: int, vocab_size: int, seed: int
) -> dict[str, torch.Tensor]:
    """Preference rows: chosen and rejected share a random prompt; labels cover the reply tokens only.

    The column layout is the data pipeline's (``chosen_*`` / ``rejected_*``, no padding), so a
    preference objective can be driven without tokenizing anything.
    """
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab_size, (rows, prompt_len), generator=g)
    batch: dict[str, torch.Tensor] = {}
    for side in ("chosen", "rejected"):
        reply = torch.randint(0, vocab_size, (rows, seq_len - prompt_len), generator=g)
        ids = torch.cat([prompt, reply], dim=1)
        labels = ids.clone()
        labels[:, :prompt_len] = -100
        batch |= {
            f"{side}_input_ids": ids,
            f"{side}_labels": labels,
            f"{side}_attention_mask": torch.ones_like(ids),
        }
    return batch


def reference_train(
    model: torch.nn.Module,
    batches: Sequence[dict[str, torch.Tensor]],
    trainer: TrainerConfig,
    total_steps: int,
) -> tuple[list[float], float, int]:
    """A plain single-process PyTorch loop: the yardstick the engine is checked and timed against.

    One forward/backward per global batch, the same AdamW parameter groups, gradient clipping
    (``torch.nn.utils.clip_grad_norm_``, DeepSpeed's formula) and LR schedule as ``setup_engine``.
    Returns (loss per step, seconds spent in the steps, tokens seen).
    """
    from tuneforge.data import to_model_inputs
    from tuneforge.training.engine import build_optimizer, build_scheduler

    optimizer = build_optimizer(model, trainer.lr, trainer.weight_decay)
    scheduler = build_scheduler(optimizer, trainer, total_steps)
    model.train()
    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    for step in range(total_steps):
        batch = batches[step % len(batches)]
        loss = model(**to_model_inputs(batch)).loss
        loss.backward()
        if trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        tokens += int(batch["input_ids"].numel())
    return losses, time.perf_counter() - started, tokens
