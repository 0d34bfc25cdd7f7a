"""editor: corrected text as the target, from line-aligned files or seeded synthetic corruption."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tuneforge.modes import get_mode
from tuneforge.modes.editor import PROMPTS as ED
from tuneforge.modes.editor import EditorExample, corrupt

from .helpers import SHARED, build, needs_shared, turns, write


def test_editor() -> None:
    conv = get_mode("editor").compile(EditorExample("He go home.", "He goes home."))
    assert turns(conv) == [("system", ED["system"]), ("user", "He go home."), ("assistant", "He goes home.")]


def test_editor_from_two_line_aligned_files(tmp_path: Path) -> None:
    src = write(tmp_path / "src.txt", "He go home.\n\nShe have cats.\n")
    ref = write(tmp_path / "ref.txt", "He goes home.\n\nShe has cats.\n")
    items, _ = build("editor", [src, ref])
    assert [(x.source, x.corrected) for x in items] == [
        ("He go home.", "He goes home."),
        ("She have cats.", "She has cats."),
    ]
    bad = write(tmp_path / "short.txt", "one line\n")
    with pytest.raises(ValueError, match="line-aligned"):
        build("editor", [src, bad])


def test_editor_synthetic_corruption_is_seeded_and_keeps_some_clean(tmp_path: Path) -> None:
    clean = write(
        tmp_path / "clean.txt", "\n".join(f"The cat is sitting on mat number {i} today." for i in range(200))
    )
    a, opts = build("editor", [clean])
    b, _ = build("editor", [clean])
    assert a == b and len(a) + opts.counts["skipped_unchanged"] == 200
    assert opts.counts["kept_clean"] > 0 and opts.counts["corrupted"] > 150
    assert all(x.corrected.startswith("The cat is sitting") for x in a)
    assert sum(x.source != x.corrected for x in a) == opts.counts["corrupted"]


@pytest.mark.parametrize("kind", ["typo", "agreement", "punctuation", "word_order"])
def test_each_corruption_changes_the_text(kind: str) -> None:
    text = "This cat is sleeping on the warm sofa, quietly."
    assert corrupt(text, random.Random(0), 1, [kind]) != text


@needs_shared
def test_shared_jfleg_builds() -> None:
    jfleg, _ = build("editor", [str(SHARED / "jfleg" / "dev.src"), str(SHARED / "jfleg" / "dev.ref0")])
    assert len(jfleg) > 700
