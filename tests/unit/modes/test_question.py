"""question: a passage and the questions it raises, numbered, built from SQuAD (nested and flat)."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data.text_parse import list_items
from tuneforge.modes import get_mode
from tuneforge.modes.question import QuestionExample

from .helpers import SHARED, build, needs_shared, turns, write


def test_question_numbers_the_questions() -> None:
    conv = get_mode("question").compile(QuestionExample("Paris is in France.", ("Where is Paris?", "Why?")))
    assert turns(conv)[1:] == [("user", "Paris is in France."), ("assistant", "1. Where is Paris?\n2. Why?")]
    assert list_items(conv.messages[-1].content) == ["Where is Paris?", "Why?"]


def test_question_from_squad_nested_and_flat(tmp_path: Path) -> None:
    nested = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {"context": "Paris is in France.", "qas": [{"question": "Where is Paris?", "id": "1"}]}
                ],
            }
        ]
    }
    flat = {
        "data": [
            {"context": "Oslo is cold.", "question": "Is Oslo cold?"},
            {"context": "Oslo is cold.", "question": "What is cold?"},
        ]
    }
    items, _ = build(
        "question",
        [write(tmp_path / "n.json", json.dumps(nested)), write(tmp_path / "f.json", json.dumps(flat))],
    )
    assert [(x.passage, x.questions) for x in items] == [
        ("Paris is in France.", ("Where is Paris?",)), ("Oslo is cold.", ("Is Oslo cold?", "What is cold?")),
    ]  # fmt: skip


@needs_shared
def test_shared_squad_builds() -> None:
    squad, _ = build("question", [str(SHARED / "squad" / "squad.json")])
    assert len(squad) == 2 and sum(len(x.questions) for x in squad) == 5
