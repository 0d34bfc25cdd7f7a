"""reverse-instruction: given an output, write the prompt that would produce it (swapped instruct data)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.instruct import build as build_instruct

PROMPTS = {"system": "Here is an output. Write the instruction that would produce it."}


@dataclass(frozen=True)
class ReverseInstructionExample:
    """An output and the prompt (instruction, plus its input if any) that produced it."""

    output: str
    instruction: str


def compile_reverse_instruction(ex: ReverseInstructionExample) -> Conversation:
    return conversation(PROMPTS["system"], ("user", ex.output), ("assistant", ex.instruction))


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[ReverseInstructionExample]:
    """Any instruction data, swapped: the answer becomes the input, the full prompt the target."""
    for ex in build_instruct(sources, opts):
        yield ReverseInstructionExample(ex.output, ex.prompt)


MODE = Mode(
    name="reverse-instruction",
    learns="given an output, produce the prompt that would produce it",
    structure=ReverseInstructionExample,
    prompts=PROMPTS,
    compile=compile_reverse_instruction,
    build=build,
    metric="rougeL",
    metrics=("eval_loss", "rougeL", "exact_match"),
    sources="any instruction data (swapped)",
)
