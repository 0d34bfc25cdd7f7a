"""instruct: follow one instruction (optionally with an input), the Alpaca shape."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.sources import exchanges, records, suffix

PROMPTS = {"system": "Follow the instruction. Answer with the result only."}


@dataclass(frozen=True)
class InstructExample:
    """One instruction, its optional input, and the desired output."""

    instruction: str
    output: str
    input: str = ""

    @property
    def prompt(self) -> str:
        """The user turn: instruction, then the input after a blank line (as Alpaca renders it)."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction


def compile_instruct(ex: InstructExample, system: str | None = PROMPTS["system"]) -> Conversation:
    return conversation(system, ("user", ex.prompt), ("assistant", ex.output), mode="instruct")


def instruct_examples(sources: Sequence[str], opts: BuildOptions) -> Iterator[InstructExample]:
    """Alpaca/OpenAI/ShareGPT files (last exchange), self-instruct seed tasks, Dolly-style records."""
    for src in sources:
        if suffix(src) in (".json", ".jsonl") and _looks_like_seed_or_dolly(src):
            for rec in records(src):
                if "instances" in rec:
                    yield from seed_tasks_from(rec, opts)
                else:
                    opts.counts["read"] += 1
                    yield InstructExample(rec["instruction"], rec.get("response", ""), rec.get("context", ""))
            continue
        for user, answer in exchanges([src]):
            opts.counts["read"] += 1
            yield InstructExample(user, answer)


def seed_tasks_from(rec: dict, opts: BuildOptions) -> Iterator[InstructExample]:
    """Self-instruct seed tasks carry several instances; each is one example."""
    for inst in rec.get("instances") or []:
        opts.counts["read"] += 1
        yield InstructExample(rec["instruction"], inst.get("output", ""), inst.get("input", ""))


def _looks_like_seed_or_dolly(path: str) -> bool:
    """Seed tasks (``instances``) and Dolly (``response``) are not data-layer formats; detect them."""
    try:
        first = records(path)[0]
    except Exception:  # noqa: BLE001 - anything unreadable is left to the data layer's clear errors
        return False
    return "instances" in first or ("response" in first and "instruction" in first)


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[InstructExample]:
    for ex in instruct_examples(sources, opts):
        if ex.instruction.strip() and ex.output.strip():
            yield ex
        else:
            opts.counts["skipped_empty"] += 1


MODE = Mode(
    name="instruct",
    learns="follow one instruction (optionally with input)",
    structure=InstructExample,
    prompts=PROMPTS,
    compile=compile_instruct,
    build=build,
    metric="rougeL",
    metrics=("eval_loss", "rougeL", "exact_match"),
    sources="instruction data (Alpaca, OpenAI, ShareGPT, self-instruct seed tasks, Dolly)",
)
