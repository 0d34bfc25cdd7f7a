"""instruct: the Alpaca shape compiled to one exchange, built from records and seed tasks."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.instruct import InstructExample

from .helpers import SHARED, build, jsonl, needs_shared, turns


def test_instruct() -> None:
    conv = get_mode("instruct").compile(InstructExample("Add the numbers.", "5", "2 and 3"))
    assert turns(conv)[1:] == [("user", "Add the numbers.\n\n2 and 3"), ("assistant", "5")]
    assert conv.messages[0].role == "system" and conv.mode == "instruct"


def test_instruct_from_alpaca(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2 3", "output": "5"}])
    (ex,), _ = build("instruct", [src])
    assert (ex.prompt, ex.output) == ("Add.\n\n2 3", "5")  # the data layer joins instruction and input


@needs_shared
def test_shared_seed_tasks_build() -> None:
    seeds, _ = build("instruct", [str(SHARED / "self-instruct" / "seed_tasks.jsonl")])
    assert len(seeds) == 175
