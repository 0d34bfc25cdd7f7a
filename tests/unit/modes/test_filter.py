"""filter: keep the sentences on the listed topics, synthetic or from topic files."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.filter import PROMPTS as FI
from tuneforge.modes.filter import TOPICS, FilterExample

from .helpers import build, write


def test_filter_lists_filters_and_keeps_parts() -> None:
    conv = get_mode("filter").compile(FilterExample("A rains. B bakes.", ("about weather",), ("A rains.",)))
    assert conv.messages[1].content == "Filters:\n- about weather\n\nText:\nA rains. B bakes."
    assert conv.messages[2].content == "A rains."
    empty = get_mode("filter").compile(FilterExample("B bakes.", ("about weather",), ()))
    assert empty.messages[-1].content == FI["none"]


def test_filter_synthetic_keeps_exactly_the_on_topic_sentences() -> None:
    items, _ = build("filter", [], n="50")
    assert len(items) == 50
    for ex in items:
        topic = ex.filters[0].removeprefix("about ")
        on_topic = {
            f"{s} {v} {o}." for s in TOPICS[topic][0] for v in TOPICS[topic][1] for o in TOPICS[topic][2]
        }
        assert all(s in on_topic for s in ex.kept) and all(s in ex.text for s in ex.kept)


def test_filter_from_topic_files(tmp_path: Path) -> None:
    a = write(tmp_path / "cooking.txt", "Stir the soup. Add salt.\nBake the bread.")
    b = write(tmp_path / "sports.txt", "The team won. He scored twice.")
    items, _ = build("filter", [a, b], n="20")
    assert len(items) == 20 and {x.filters[0] for x in items} <= {"about cooking", "about sports"}
