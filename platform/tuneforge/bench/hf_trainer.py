"""The HF Trainer on the benchmark's batches: same model weights, optimizer, LR schedule and clipping.

The Trainer gets tuneforge's own optimizer and scheduler (``optimizers=``), the packed rows in step
order (a sequential sampler, batch = the global batch), no evaluation, no saving, no reporting and no
dataloader workers, so it trains exactly the batches the plain loop trains. Steps are timed between
the Trainer's ``on_step_end`` callbacks (data loading included, as in the full path).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch
from torch.utils.data import Dataset, SequentialSampler
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from tuneforge.bench.plain_loop import process_stats, setup_loop


class RowDataset(Dataset[dict[str, torch.Tensor]]):
    """The global batches' rows, flattened in order: batch i is rows [i*R, (i+1)*R)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.rows = [{k: v[r] for k, v in b.items()} for b in batches for r in range(len(b["input_ids"]))]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.rows[i]


def stack_rows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


class _InOrder(Trainer):
    """The Trainer with a sequential sampler: the same batch sequence as the plain loop."""

    def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
        return SequentialSampler(self.train_dataset)  # type: ignore[arg-type]


class StepTimer(TrainerCallback):
    """Seconds of every optimizer step, from one ``on_step_end`` to the next (the first from train begin)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self._last = device, 0.0
        self.seconds: list[float] = []

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self._last = time.perf_counter()

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now


def run_hf(
    job_raw: dict[str, Any],
    base_dir: str,
    batches: list[dict[str, torch.Tensor]],
    steps: int,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """Train ``steps`` steps with ``transformers.Trainer``; per-step seconds, losses and peak memory."""
    s = setup_loop(job_raw, base_dir, steps, use_gpu)
    job, device = s.job, s.device
    rows = len(batches[0]["input_ids"])
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory(prefix="tf-bench-hf-") as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=rows,
            gradient_accumulation_steps=1,
            max_steps=steps,
            learning_rate=job.trainer.lr,
            max_grad_norm=job.trainer.grad_clip or 0.0,
            lr_scheduler_type="constant",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            dataloader_drop_last=True,
            remove_unused_columns=False,
            disable_tqdm=True,
            use_cpu=device.type == "cpu",
            bf16=s.autocast is torch.bfloat16,  # the job's autocast, as the engine's torch_autocast
            seed=job.trainer.seed,
            data_seed=job.trainer.seed,
        )
        trainer = _InOrder(
            model=s.model,
            args=args,
            train_dataset=RowDataset(batches),
            data_collator=stack_rows,
            optimizers=(s.optimizer, s.scheduler),
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict would land in the report
        result = trainer.train()
    return {
        "step_seconds": timer.seconds,
        "train_loss": float(result.training_loss),
        **process_stats(device),
    }
