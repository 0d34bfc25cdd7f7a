"""Evaluate a model on held-out conversations: per-example loss and a generation-based task metric.

Per-example scores (not just means) are kept so that reports carry bootstrap intervals and the
promotion gate can compare two models example by example.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tuneforge.data import (
    Conversation,
    Message,
    collate,
    encode_conversation,
    pad_examples,
    read_conversations,
    render_prompt,
    to_model_inputs,
)
from tuneforge.evaluation.metrics import get_metric, score
from tuneforge.evaluation.stats import Interval, bootstrap_ci

LOSS_METRICS = ("eval_loss",)


@dataclass
class EvalReport:
    """What ``tuneforge eval`` reports; ``per_example`` holds the paired scores."""

    n: int
    data_hash: str
    metrics: dict[str, Interval]
    per_example: dict[str, np.ndarray] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "data_hash": self.data_hash}
        for name, iv in self.metrics.items():
            out[name] = iv.as_dict()
        if "eval_loss" in self.metrics:
            out["perplexity"] = math.exp(self.metrics["eval_loss"].mean)
        return out


def file_hash(path: str | Path) -> str:
    """Content hash of an evaluation file: evaluation sets are versioned by what they contain."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@torch.no_grad()
def per_example_loss(
    model: torch.nn.Module,
    tokenizer: Any,
    convs: Sequence[Conversation],
    max_seq_len: int = 512,
    batch_size: int = 16,
    template: str = "chatml",
) -> np.ndarray:
    """Mean loss over each example's trained tokens (NaN when nothing is left to score)."""
    model.eval()
    encoded = [encode_conversation(c, tokenizer, template=template, max_seq_len=max_seq_len) for c in convs]
    out = np.full(len(convs), np.nan)
    keep = [i for i, e in enumerate(encoded) if e is not None]
    device = next(model.parameters()).device
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size]
        width = max(len(encoded[i]["input_ids"]) for i in idx)
        batch = collate(pad_examples([encoded[i] for i in idx], width, tokenizer.pad_token_id))
        inputs = to_model_inputs({k: v.to(device) for k, v in batch.items()})
        labels = inputs.pop("labels")
        logits = model(**inputs).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
        tok_loss = F.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        )
        mask = (shift_labels != -100).float()
        losses = (tok_loss * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[idx] = losses.cpu().numpy()
    return out


@torch.no_grad()
def greedy_generate(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 48,
    batch_size: int = 16,
) -> list[str]:
    """Greedy completions for rendered prompts; batches are left-padded, decoding stops at EOS."""
    model.eval()
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    texts: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(
                list(prompts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            texts.extend(tokenizer.decode(row, skip_special_tokens=True).strip() for row in new)
    finally:
        tokenizer.padding_side = side
    return texts


def split_prompt_reference(conv: Conversation) -> tuple[str, str]:
    """The prompt up to the last assistant turn, and that turn's content as the reference."""
    last = max(i for i, m in enumerate(conv.messages) if m.role == "assistant")
    history: list[Message] = list(conv.messages[:last])
    return render_prompt(history), conv.messages[last].content


def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    data_file: str | Path,
    metrics: Sequence[str] = ("eval_loss",),
    max_seq_len: int = 512,
    max_new_tokens: int = 48,
    seed: int = 0,
) -> EvalReport:
    """Score ``model`` on every record of ``data_file`` with each requested metric."""
    convs = list(read_conversations(data_file))
    per: dict[str, np.ndarray] = {}
    generated: tuple[list[str], tuple[str, ...]] | None = None
    for name in metrics:
        if name == "eval_loss":
            per[name] = per_example_loss(model, tokenizer, convs, max_seq_len)
        else:
            if generated is None:  # one generation pass serves every task metric
                prompts, refs = zip(*(split_prompt_reference(c) for c in convs), strict=True)
                generated = (greedy_generate(model, tokenizer, prompts, max_new_tokens), refs)
            per[name] = score(name, generated[0], generated[1], convs)
    return EvalReport(len(convs), file_hash(data_file), intervals_of(per, seed), per)


def intervals_of(per: dict[str, np.ndarray], seed: int = 0) -> dict[str, Interval]:
    """Bootstrap interval per metric over the examples it scored (NaN = not applicable, left out)."""
    out = {}
    for k, v in per.items():
        kept = v[~np.isnan(v)]
        out[k] = bootstrap_ci(kept, seed=seed) if kept.size else Interval(math.nan, math.nan, math.nan)
    return out


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: losses go down, task metrics go up."""
    return metric not in LOSS_METRICS and get_metric(metric).higher_is_better
