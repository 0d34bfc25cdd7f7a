"""Prompting baselines (seed 001): the untuned base, zero-shot and k-shot, scored like the tuned model.

Every report then reads ``base_zero_shot / base_k_shot / tuned`` on the same examples and metric, so a
fine-tune has to beat what prompting alone gets. A k-shot prompt is the mode's own system prompt,
then ``k`` solved examples as earlier turns (their answers untrained context), then the query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneforge.data import Conversation, Message, prompt_text
from tuneforge.evaluation.evaluate import greedy_generate, intervals_of, per_example_loss
from tuneforge.evaluation.metrics import score
from tuneforge.modes.base import Mode


def with_shots(conv: Conversation, shots: Sequence[Conversation]) -> Conversation:
    """``conv`` with ``shots``' turns inserted after its system prompt, their answers not trained."""
    system = [m for m in conv.messages if m.role == "system"]
    context = [
        Message(m.role, m.content, train=False if m.role == "assistant" else None)
        for s in shots
        for m in s.messages
        if m.role in ("user", "assistant")
    ]
    rest = [m for m in conv.messages if m.role != "system"]
    return Conversation(tuple(system + context + rest), mode=conv.mode)


def pick_shots(i: int, k: int, pool: Sequence[Conversation], same_set: bool) -> list[Conversation]:
    """``k`` shots for example ``i``: the next ones in the pool (skipping ``i`` itself when the pool is
    the evaluation set, leave-one-out), so every example gets the same number and nothing leaks."""
    if not pool or k <= 0:
        return []
    picked: list[Conversation] = []
    j = i + 1 if same_set else i
    while len(picked) < min(k, len(pool) - int(same_set)):
        if not (same_set and j % len(pool) == i):
            picked.append(pool[j % len(pool)])
        j += 1
    return picked


def score_mode(
    model: Any,
    tokenizer: Any,
    convs: Sequence[Conversation],
    mode: Mode,
    k: int = 0,
    pool: Sequence[Conversation] | None = None,
    max_new_tokens: int = 64,
    max_seq_len: int = 1024,
    batch_size: int = 16,
    template: str = "auto",
) -> dict[str, np.ndarray]:
    """Per-example scores of every metric of ``mode`` with ``k``-shot prompts (0 = zero-shot).

    ``template`` is the one the tuned model was trained with: base and tuned are asked alike.
    """
    k = 0 if mode.record_format == "pretrain" else k
    same = pool is None
    pool = list(convs) if pool is None else list(pool)
    shot = [with_shots(c, pick_shots(i, k, pool, same)) if k else c for i, c in enumerate(convs)]
    per: dict[str, np.ndarray] = {}
    if "eval_loss" in mode.metrics:
        per["eval_loss"] = per_example_loss(model, tokenizer, shot, max_seq_len, batch_size, template)
    task = [m for m in mode.metrics if m != "eval_loss"]
    if task:
        prompts = [prompt_text(c, tokenizer, template) for c in shot]
        refs = [next(m.content for m in reversed(c.messages) if m.role == "assistant") for c in convs]
        preds = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size)
        for name in task:
            per[name] = score(name, preds, refs, convs)
        per["_predictions"] = np.array(preds, dtype=object)
    return per


def summarize(per: dict[str, np.ndarray], seed: int = 0) -> dict[str, Any]:
    """``{metric: {mean, low, high}}`` (+ perplexity from eval_loss), predictions left out."""
    scores = {k: np.asarray(v, dtype=float) for k, v in per.items() if not k.startswith("_")}
    out: dict[str, Any] = {k: iv.as_dict() for k, iv in intervals_of(scores, seed).items()}
    if "eval_loss" in out and not math.isnan(out["eval_loss"]["mean"]):
        out["perplexity"] = math.exp(out["eval_loss"]["mean"])
    return out


def prompting_baselines(
    base: tuple[Any, Any],
    tuned: tuple[Any, Any] | None,
    convs: Sequence[Conversation],
    mode: Mode,
    k: int,
    pool: Sequence[Conversation] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """``{"base_zero_shot", "base_k_shot", "tuned"}`` reports for (model, tokenizer) pairs.

    Raw-text modes (``domain``) have no prompt to put shots in: their k-shot entry repeats zero-shot.
    """
    zero = summarize(score_mode(*base, convs, mode, 0, pool, **kwargs))
    raw = mode.record_format == "pretrain"
    out = {
        "base_zero_shot": zero,
        "base_k_shot": zero if raw else summarize(score_mode(*base, convs, mode, k, pool, **kwargs)),
    }
    if tuned is not None:
        out["tuned"] = summarize(score_mode(*tuned, convs, mode, 0, pool, **kwargs))
    return out
