"""schedule: break a command down into smaller ordered tasks, returned as a numbered list."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data import Conversation
from tuneforge.data.text_parse import numbered_item, parse_numbered
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.sources import first_key, records, suffix

PROMPTS = {"system": "Break the command down into smaller tasks. Return them as a numbered list, in order."}


@dataclass(frozen=True)
class ScheduleExample:
    """A goal (command) and its ordered steps."""

    goal: str
    steps: tuple[str, ...]


def compile_schedule(ex: ScheduleExample) -> Conversation:
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(ex.steps, 1))
    return conversation(PROMPTS["system"], ("user", ex.goal), ("assistant", body))


def numbered_procedures(text: str, min_steps: int = 2) -> Iterator[ScheduleExample]:
    """Runs of lines numbered 1, 2, 3... in text; the goal is the last non-blank line before the run."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        item = numbered_item(lines[i])
        if item is None or item[0] != 1:
            i += 1
            continue
        goal = next((ln.strip().strip("#:").strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        steps, expect = [], 1
        while i < len(lines) and (item := numbered_item(lines[i])) is not None and item[0] == expect:
            steps.append(item[1])
            expect, i = expect + 1, i + 1
            while i < len(lines) and not lines[i].strip():
                i += 1
        if goal and len(steps) >= min_steps:
            yield ScheduleExample(goal, tuple(steps))


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[ScheduleExample]:
    """``(goal, steps)`` records (goal|task|command|instruction; steps a list or a numbered string), or
    numbered procedures found in ``.txt``/``.md`` text."""
    for src in sources:
        if suffix(src) in (".txt", ".md"):
            for ex in numbered_procedures(Path(src).read_text(encoding="utf-8")):
                opts.counts["from_text"] += 1
                yield ex
            continue
        for rec in records(src):
            goal = first_key(rec, "goal", "task", "command", "instruction")
            steps = first_key(rec, "steps", "plan", "output")
            if isinstance(steps, str):
                steps = [s for _, s in parse_steps(steps)]
            if isinstance(goal, str) and steps and len(steps) >= 2:
                opts.counts["from_records"] += 1
                yield ScheduleExample(goal.strip(), tuple(str(s).strip() for s in steps))
            else:
                opts.counts["skipped_no_steps"] += 1


#: (number, step) for every numbered line of a generated schedule (the metrics parse with it too).
parse_steps = parse_numbered


MODE = Mode(
    name="schedule",
    learns="break a command down into smaller ordered tasks",
    structure=ScheduleExample,
    prompts=PROMPTS,
    compile=compile_schedule,
    build=build,
    metric="step_recall",
    metrics=("step_recall", "structure_validity", "rougeL"),
    sources="(goal, steps) records; numbered procedures in .txt/.md text",
)
