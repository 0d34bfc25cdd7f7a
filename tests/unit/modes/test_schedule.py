"""schedule: a goal broken into a numbered list of steps, from records and numbered text."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.schedule import ScheduleExample, numbered_procedures, parse_steps

from .helpers import build, jsonl


def test_schedule_is_a_numbered_list() -> None:
    conv = get_mode("schedule").compile(ScheduleExample("Make tea", ("Boil water", "Add tea", "Wait")))
    assert conv.messages[-1].content == "1. Boil water\n2. Add tea\n3. Wait"
    assert parse_steps(conv.messages[-1].content) == [(1, "Boil water"), (2, "Add tea"), (3, "Wait")]


def test_schedule_from_records_and_numbered_text(tmp_path: Path) -> None:
    rec = jsonl(
        tmp_path / "g.jsonl",
        [
            {"goal": "Make tea", "steps": ["Boil", "Pour"]},
            {"instruction": "Bake", "output": "1. Mix\n2. Heat\n3. Eat"},
            {"goal": "One step", "steps": ["Only"]},
        ],
    )
    items, opts = build("schedule", [rec])
    assert [(x.goal, x.steps) for x in items] == [
        ("Make tea", ("Boil", "Pour")),
        ("Bake", ("Mix", "Heat", "Eat")),
    ]
    assert opts.counts["skipped_no_steps"] == 1
    text = "# Setup\n\nInstall it:\n\n1. Download.\n2. Unpack.\n\n3. Run.\n\nSee also 1. nothing\n"
    (proc,) = numbered_procedures(text)
    assert proc.goal == "Install it" and proc.steps == ("Download.", "Unpack.", "Run.")
