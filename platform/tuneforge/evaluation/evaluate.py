"""Evaluate a model on held-out conversations: per-example loss and a generation-based task metric.

Per-example scores (not just means) are kept so that reports carry bootstrap intervals and the
promotion gate can compare two models example by example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from tuneforge.data import (
    Conversation,
    collate,
    encode_record,
    pad_examples,
    prompt_text,
    read_conversations,
    render_prompt,
    to_model_inputs,
)
from tuneforge.data.files import sha256_file
from tuneforge.data.trained_format import TrainedFormat
from tuneforge.evaluation.metrics import get_metric, score
from tuneforge.evaluation.preference import PREFERENCE_METRICS, evaluate_preference
from tuneforge.evaluation.stats import Interval, bootstrap_ci, ratio_bootstrap_ci

if TYPE_CHECKING:
    from transformers import GenerationMixin

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
    return sha256_file(path)[:16]


def _examples(conv: Conversation, tokenizer: Any, fmt: TrainedFormat) -> list[dict[str, list[int]]]:
    """The training examples of one record under ``fmt``: a raw-text record may give several blocks."""
    return encode_record(
        conv,
        tokenizer,
        fmt.template,
        fmt.max_seq_len,
        train_on_prompt=fmt.train_on_prompt,
        truncation=fmt.truncation,
        last_turn_only=fmt.last_turn_only,
    ).examples


@torch.no_grad()
def loss_sums(
    model: torch.nn.Module,
    tokenizer: Any,
    convs: Sequence[Conversation],
    fmt: TrainedFormat | None = None,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Per record: summed token loss over its trained tokens, and how many tokens that was.

    Records are encoded exactly as training encoded them (``fmt``: template, length, masks), so the
    token-weighted mean ``sum / count`` over a held-out split is the number training reported.
    """
    fmt = fmt or TrainedFormat()
    model.eval()
    owner: list[int] = []
    examples: list[dict[str, list[int]]] = []
    for i, conv in enumerate(convs):
        for ex in _examples(conv, tokenizer, fmt):
            owner.append(i)
            examples.append(ex)
    sums, counts = np.zeros(len(convs)), np.zeros(len(convs))
    device = next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        width = max(len(e["input_ids"]) for e in chunk)
        batch = collate(pad_examples(chunk, width, tokenizer.pad_token_id))
        inputs = to_model_inputs({k: v.to(device) for k, v in batch.items()})
        labels = inputs.pop("labels")
        assert isinstance(labels, torch.Tensor)  # copied from the batch; only use_cache is a bool
        logits = model(**inputs).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
        # (tokens, vocab) rows, as the training loss lays them out: cross_entropy over a transposed
        # (batch, vocab, time) view reduces the 49k-way log-sum-exp along a strided axis, and that
        # accumulated ~1e-4 nats of fp32 error per token on SmolLM2 (measured): enough to miss training.
        tok_loss = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(shift_labels.shape)
        mask = (shift_labels != -100).double()
        row_sums = (tok_loss.double() * mask).sum(1).cpu().numpy()
        row_counts = mask.sum(1).cpu().numpy()
        for j, (rs, rc) in enumerate(zip(row_sums, row_counts, strict=True)):
            sums[owner[start + j]] += rs
            counts[owner[start + j]] += rc
    return sums, counts


def per_example_loss(
    model: torch.nn.Module,
    tokenizer: Any,
    convs: Sequence[Conversation],
    max_seq_len: int = 512,
    batch_size: int = 16,
    template: str = "chatml",
    fmt: TrainedFormat | None = None,
) -> np.ndarray:
    """Mean loss over each example's trained tokens (NaN when nothing is left to score).

    ``fmt`` (the trained format) wins over ``template``/``max_seq_len`` when given.
    """
    fmt = fmt or TrainedFormat(template=template, max_seq_len=max_seq_len)
    return mean_losses(*loss_sums(model, tokenizer, convs, fmt, batch_size))


def mean_losses(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-record mean token loss; NaN where a record had no trained token left to score."""
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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
            # nn.Module declares no generate(); the models scored here are causal LMs (GenerationMixin).
            # transformers' @torch.no_grad() on generate() leaves mypy a doubled `self` it cannot bind.
            gen = cast("GenerationMixin", model).generate(  # type: ignore[misc]
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


def split_prompt_reference(
    conv: Conversation, tokenizer: Any = None, template: str = "chatml"
) -> tuple[str, str]:
    """The prompt up to the last assistant turn (rendered with the trained template), and that
    turn's content as the reference."""
    last = max(i for i, m in enumerate(conv.messages) if m.role == "assistant")
    history = Conversation(tuple(conv.messages[:last]), tools=conv.tools)
    if tokenizer is None:
        return render_prompt(history, template), conv.messages[last].content
    return prompt_text(history, tokenizer, template), conv.messages[last].content


def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    data_file: str | Path,
    metrics: Sequence[str] = ("eval_loss",),
    max_seq_len: int = 512,
    max_new_tokens: int = 48,
    seed: int = 0,
    fmt: TrainedFormat | None = None,
) -> EvalReport:
    """Score ``model`` on every record of ``data_file`` with each requested metric.

    ``fmt`` is how the model was trained (template, length, masks); without it the tokenizer's own
    template is used when it has one (``auto``). ``eval_loss`` is token-weighted over the whole
    file, the same estimate training reports; its per-example means feed paired comparisons.
    Raw-text records are scored as raw text; task metrics skip them (they have no answer).
    """
    fmt = fmt or TrainedFormat(max_seq_len=max_seq_len)
    if any(m in PREFERENCE_METRICS for m in metrics):
        return _preference_report(model, tokenizer, data_file, metrics, fmt, seed)
    convs = list(read_conversations(data_file))
    per: dict[str, np.ndarray] = {}
    token_weighted: Interval | None = None
    generated: tuple[list[int], list[str], tuple[str, ...]] | None = None
    for name in metrics:
        if name == "eval_loss":
            sums, counts = loss_sums(model, tokenizer, convs, fmt)
            per[name] = mean_losses(sums, counts)
            scored = counts > 0
            if scored.any():
                token_weighted = ratio_bootstrap_ci(sums[scored], counts[scored], seed=seed)
        else:
            if generated is None:  # one generation pass serves every task metric
                chats = [i for i, c in enumerate(convs) if any(m.role == "assistant" for m in c.messages)]
                pairs = [split_prompt_reference(convs[i], tokenizer, fmt.template) for i in chats]
                prompts = [p for p, _ in pairs]
                refs = tuple(r for _, r in pairs)
                generated = (chats, greedy_generate(model, tokenizer, prompts, max_new_tokens), refs)
            chats, preds, refs = generated
            values = np.full(len(convs), np.nan)
            if chats:
                values[chats] = score(name, preds, refs, [convs[i] for i in chats])
            per[name] = values
    intervals = intervals_of(per, seed)
    if token_weighted is not None:
        intervals["eval_loss"] = token_weighted
    return EvalReport(len(convs), file_hash(data_file), intervals, per)


def _preference_report(
    model: torch.nn.Module,
    tokenizer: Any,
    data_file: str | Path,
    metrics: Sequence[str],
    fmt: TrainedFormat,
    seed: int,
) -> EvalReport:
    """Preference metrics of a preference file (pairs), reference-free: what the promotion gate ranks."""
    wrong = [m for m in metrics if m not in PREFERENCE_METRICS]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} cannot be scored on preference pairs; use {PREFERENCE_METRICS}")
    rep = evaluate_preference(model, tokenizer, data_file, fmt, seed=seed)
    per = {m: rep.per_example[m] for m in metrics}
    return EvalReport(rep.n, rep.data_hash, {m: rep.metrics[m] for m in metrics}, per)


def intervals_of(per: dict[str, np.ndarray], seed: int = 0) -> dict[str, Interval]:
    """Bootstrap interval per metric over the examples it scored (NaN = not applicable, left out)."""
    out = {}
    for k, v in per.items():
        kept = v[~np.isnan(v)]
        out[k] = bootstrap_ci(kept, seed=seed) if kept.size else Interval(math.nan, math.nan, math.nan)
    return out


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: losses go down, task metrics go up."""
    if metric in PREFERENCE_METRICS:
        return True
    return metric not in LOSS_METRICS and get_metric(metric).higher_is_better
