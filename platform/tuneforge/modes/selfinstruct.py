"""Self-instruct (seed 003): bootstrap instruction/response pairs from seed tasks with any causal LM.

Each round samples seed and already-generated tasks into a plain-text prompt (no chat template, so any
causal LM can continue it), samples a continuation, parses ``Instruction / Input / Output`` from it and
filters: unparseable, empty, too long, or a near-duplicate of the pool (ROUGE-L >= 0.7 against any
instruction already in it). Every rejection is counted by filter so a run says why it kept what it did.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuneforge.modes.base import BuildOptions
from tuneforge.modes.instruct import InstructExample, instruct_examples

PROMPTS = {
    "header": "Come up with a series of tasks. Each has an instruction, an optional input, an output.\n\n",
    "task": "Task {n}:\nInstruction: {instruction}\nInput: {input}\nOutput: {output}\n\n",
    "open": "Task {n}:\nInstruction:",
}
_PARSE = re.compile(
    r"^\s*(?P<instruction>.+?)\s*\nInput:\s*(?P<input>.*?)\s*\nOutput:\s*(?P<output>.+?)\s*$", re.S
)


@dataclass
class SelfInstructResult:
    """What a run produced and why candidates were dropped (``counts`` per filter)."""

    accepted: list[InstructExample] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def load_seed_tasks(path: str) -> list[InstructExample]:
    """Self-instruct ``seed_tasks.jsonl`` (instances flattened), or any instruction data the readers take."""
    return list(instruct_examples([path], BuildOptions()))


def render_prompt(tasks: Sequence[InstructExample]) -> str:
    body = "".join(
        PROMPTS["task"].format(n=i, instruction=t.instruction, input=t.input or "<noinput>", output=t.output)
        for i, t in enumerate(tasks, 1)
    )
    return PROMPTS["header"] + body + PROMPTS["open"].format(n=len(tasks) + 1)


def parse_task(text: str) -> InstructExample | None:
    """The first task of a continuation, or None when it does not have the three fields."""
    text = text.split("\nTask ", 1)[0]
    m = _PARSE.match(text)
    if not m:
        return None
    inp = m.group("input").strip()
    return InstructExample(
        m.group("instruction").strip(), m.group("output").strip(), "" if inp == "<noinput>" else inp
    )


def is_near_duplicate(instruction: str, pool: Sequence[str], threshold: float = 0.7) -> bool:
    """ROUGE-L F1 against every pooled instruction; at or above ``threshold`` is a near-duplicate."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return any(scorer.score(p, instruction)["rougeL"].fmeasure >= threshold for p in pool)


@torch.no_grad()
def self_instruct(
    model: Any,
    tokenizer: Any,
    seeds: Sequence[InstructExample],
    n: int,
    *,
    k: int = 3,
    max_new_tokens: int = 128,
    max_chars: int = 1000,
    max_attempts: int | None = None,
    threshold: float = 0.7,
    seed: int = 0,
) -> SelfInstructResult:
    """Generate until ``n`` pairs pass the filters or ``max_attempts`` (default 4n) candidates were tried."""
    rng, result = random.Random(seed), SelfInstructResult()
    torch.manual_seed(seed)
    pool = [s.instruction for s in seeds]
    model.eval()
    device = next(model.parameters()).device
    for _ in range(max_attempts or 4 * n):
        if len(result.accepted) >= n:
            break
        result.counts["attempted"] += 1
        shots = rng.sample(list(seeds) + result.accepted, min(k, len(seeds) + len(result.accepted)))
        ids = tokenizer(render_prompt(shots), return_tensors="pt", add_special_tokens=False).to(device)
        out = model.generate(
            **ids,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            top_p=0.95,
            temperature=1.0,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        task = parse_task(text)
        reason = _rejection(task, pool, max_chars, threshold)
        result.counts[reason or "accepted"] += 1
        if reason is None and task is not None:
            result.accepted.append(task)
            pool.append(task.instruction)
    return result


def _rejection(
    task: InstructExample | None, pool: Sequence[str], max_chars: int, threshold: float
) -> str | None:
    if task is None:
        return "unparseable"
    if not task.instruction or not task.output:
        return "empty"
    if len(task.instruction) + len(task.input) + len(task.output) > max_chars:
        return "too_long"
    if is_near_duplicate(task.instruction, pool, threshold):
        return "near_duplicate"
    return None


def write_alpaca(tasks: Sequence[InstructExample], out: str | Path) -> None:
    """Accepted pairs as Alpaca JSONL (``instruction``/``input``/``output``): any mode builder reads it."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps({"instruction": t.instruction, "input": t.input, "output": t.output}) + "\n")
