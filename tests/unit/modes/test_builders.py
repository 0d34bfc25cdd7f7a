"""Builders on small inputs: the pairs each mode manufactures from data people have."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tuneforge.modes import BuildOptions, get_mode
from tuneforge.modes.diff import apply_unified_diff, git_hunks, unified_diff
from tuneforge.modes.editor import corrupt
from tuneforge.modes.filter import TOPICS
from tuneforge.modes.schedule import numbered_procedures

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")


def build(mode: str, sources: list[str], **options: str) -> tuple[list, BuildOptions]:
    opts = BuildOptions(seed=1, options=dict(options))
    return list(get_mode(mode).build(sources, opts)), opts


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def jsonl(path: Path, rows: list[dict]) -> str:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_instruct_and_reverse_instruction_from_alpaca(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2 3", "output": "5"}])
    (ex,), _ = build("instruct", [src])
    assert (ex.prompt, ex.output) == ("Add.\n\n2 3", "5")  # the data layer joins instruction and input
    (rev,), _ = build("reverse-instruction", [src])
    assert (rev.output, rev.instruction) == ("5", "Add.\n\n2 3")


def test_chat_and_reverse_chat_from_sharegpt(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    src = jsonl(tmp_path / "c.jsonl", [{"conversations": conv}])
    (chat,), _ = build("chat", [src])
    assert chat.turns == (("user", "Hi"), ("assistant", "Hello"))
    (rev,), _ = build("reverse-chat", [src])
    assert [m.content for m in get_mode("reverse-chat").compile(rev).messages][1:] == [
        "(start the conversation)",
        "Hi",
    ]


def test_chat_instruct_mixes_at_the_ratio(tmp_path: Path) -> None:
    turns = [{"role": r, "content": f"{r} {i}"} for i in range(2) for r in ("user", "assistant")]
    chats = jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": turns
                + [{"role": "user", "content": f"q{k}"}, {"role": "assistant", "content": "a"}]
            }
            for k in range(200)
        ],
    )
    instr = jsonl(tmp_path / "i.jsonl", [{"instruction": f"Do {k}", "output": "done"} for k in range(10)])
    items, opts = build("chat+instruct", [chats, instr], ratio="0.25")
    switched = sum(x.instruction is not None for x in items)
    assert len(items) == 200 and 30 <= switched <= 70 and opts.counts["switched"] == switched


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


def test_domain_from_text(tmp_path: Path) -> None:
    src = write(tmp_path / "d.txt", "A long enough line of domain text.\nshort\n")
    items, opts = build("domain", [src])
    assert [x.text for x in items] == ["A long enough line of domain text."] and opts.counts[
        "skipped_short"
    ] == 1


@needs_shared
def test_shared_sources_build() -> None:
    diffs, _ = build("diff", [str(SHARED / "docs-diffs-rust-book" / "commits.jsonl")])
    assert len(diffs) >= 50 and all(apply_unified_diff(x.text, x.diff) == x.result for x in diffs)
    jfleg, _ = build("editor", [str(SHARED / "jfleg" / "dev.src"), str(SHARED / "jfleg" / "dev.ref0")])
    assert len(jfleg) > 700
    squad, _ = build("question", [str(SHARED / "squad" / "squad.json")])
    assert len(squad) == 2 and sum(len(x.questions) for x in squad) == 5
    seeds, _ = build("instruct", [str(SHARED / "self-instruct" / "seed_tasks.jsonl")])
    assert len(seeds) == 175
