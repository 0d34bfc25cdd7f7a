"""reverse-instruction: an output becomes the prompt and its instruction the target."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.reverse_instruction import ReverseInstructionExample

from .helpers import build, jsonl, turns


def test_reverse_instruction_swaps() -> None:
    conv = get_mode("reverse-instruction").compile(ReverseInstructionExample("5", "Add 2 and 3."))
    assert turns(conv)[1:] == [("user", "5"), ("assistant", "Add 2 and 3.")]


def test_reverse_instruction_from_alpaca(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2 3", "output": "5"}])
    (rev,), _ = build("reverse-instruction", [src])
    assert (rev.output, rev.instruction) == ("5", "Add.\n\n2 3")
