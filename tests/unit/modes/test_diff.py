"""diff: a text and a unified diff in, the patched text out; diffs from version pairs and git hunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.modes import get_mode
from tuneforge.modes.diff import DiffExample, apply_unified_diff, git_hunks, unified_diff

from .helpers import SHARED, build, needs_shared, write


def test_diff() -> None:
    conv = get_mode("diff").compile(DiffExample("a\nb", "--- before\n+++ after\n@@ -2 +2 @@\n-b\n+c", "a\nc"))
    assert conv.messages[1].content == "Text:\na\nb\n\nDiff:\n--- before\n+++ after\n@@ -2 +2 @@\n-b\n+c"
    assert conv.messages[2].content == "a\nc"


def test_diff_round_trip_and_apply_rejects_mismatch() -> None:
    before, after = "a\nb\nc\nd", "a\nB\nc\nd\ne"
    d = unified_diff(before, after)
    assert d.startswith("--- before\n+++ after\n@@") and apply_unified_diff(before, d) == after
    with pytest.raises(ValueError, match="does not match"):
        apply_unified_diff("x\ny\nz\nw", d)
    assert apply_unified_diff("", unified_diff("", "new line")) == "new line"


def test_diff_from_version_pairs_and_git_hunks(tmp_path: Path) -> None:
    old = write(tmp_path / "old.txt", "one\ntwo\nthree\nfour\nfive\n")
    new = write(tmp_path / "new.txt", "one\n2\nthree\nfour\nfive\n")
    items, opts = build("diff", [old, new], group="2")
    assert len(items) == 1 and opts.counts["skipped_identical"] == 2
    assert apply_unified_diff(items[0].text, items[0].diff) == items[0].result == "one\n2"
    patch = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -3,3 +3,3 @@ ctx\n keep\n-teh cat\n+the cat\n end\n"
    assert list(git_hunks(patch)) == [("keep\nteh cat\nend", "keep\nthe cat\nend")]
    (ex,), _ = build("diff", [write(tmp_path / "c.patch", patch)])
    assert ex.result == "keep\nthe cat\nend" and apply_unified_diff(ex.text, ex.diff) == ex.result


@needs_shared
def test_shared_docs_diffs_build() -> None:
    diffs, _ = build("diff", [str(SHARED / "docs-diffs-rust-book" / "commits.jsonl")])
    assert len(diffs) >= 50 and all(apply_unified_diff(x.text, x.diff) == x.result for x in diffs)
