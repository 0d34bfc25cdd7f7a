"""Near-duplicate detection: normalisation, shingling, the MinHash/LSH index and its recall on a corpus."""

from __future__ import annotations

import random

import pytest

from tuneforge.data import Conversation, Message
from tuneforge.data.near_dedup import NearDuplicateIndex, dedup_text, shingles

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "sipping cold lemonade and wondering whether the storm clouds gathering over the western hills "
    "will finally bring the rain his thirsty fields have needed for weeks."
)


def chat(user: str, assistant: str, system: str | None = None) -> Conversation:
    msgs = [Message("system", system)] if system is not None else []
    return Conversation(tuple([*msgs, Message("user", user), Message("assistant", assistant)]))


def test_dedup_text_tags_roles_lowercases_and_collapses_whitespace() -> None:
    conv = chat("  What IS\tthe  answer? ", "Forty\n\ntwo.")
    assert dedup_text(conv) == "user: what is the answer? assistant: forty two."
    # The role tag matters: the same words said by the other side are different text.
    swapped = Conversation((Message("assistant", "What is the answer?"), Message("user", "Forty two.")))
    assert dedup_text(swapped) != dedup_text(conv)


def test_dedup_text_includes_tool_calls() -> None:
    def call(city: str) -> Conversation:
        calls = ({"id": "1", "name": "wx", "arguments": {"city": city}},)
        return Conversation((Message("user", "weather?"), Message("assistant", "", tool_calls=calls)))

    assert dedup_text(call("Paris")) != dedup_text(call("Oslo"))


def test_shingles_are_word_ngrams_with_a_short_text_fallback() -> None:
    assert shingles("a b c d", n=2) == {b"a b", b"b c", b"c d"}
    assert shingles("a  b", n=5) == {b"a b"}
    assert shingles("", n=5) == {b""}
    assert shingles("caf\u00e9 au lait", n=3) == {"caf\u00e9 au lait".encode()}
    with pytest.raises(ValueError, match="n must be >= 1"):
        shingles("a b", n=0)


def test_identical_texts_are_flagged() -> None:
    idx = NearDuplicateIndex()
    assert idx.seen_or_add("a", chat("hello there", PARAGRAPH)) is None
    assert idx.seen_or_add("b", chat("hello there", PARAGRAPH)) == "a"
    assert len(idx) == 1 and "a" in idx and "b" not in idx
    plain = NearDuplicateIndex()
    assert plain.seen_or_add("c", PARAGRAPH) is None
    assert plain.seen_or_add("d", PARAGRAPH) == "c"


def test_one_word_changed_in_a_40_word_paragraph_is_flagged_at_0_8() -> None:
    words = PARAGRAPH.split()
    assert 38 <= len(words) <= 45
    edited = list(words)
    edited[len(words) // 2] = "zebra"
    # A changed word alters up to n shingles out of about 40. With 5-word shingles the true Jaccard is
    # about 0.76, below 0.8, so it is correctly not a duplicate at that threshold. With 2-word shingles
    # it is 37/41 = 0.90, clearly above.
    idx = NearDuplicateIndex(threshold=0.8, ngram=2)
    assert idx.seen_or_add("orig", PARAGRAPH) is None
    assert idx.seen_or_add("edit", " ".join(edited)) == "orig"


def test_unrelated_texts_are_not_flagged() -> None:
    idx = NearDuplicateIndex(threshold=0.8, ngram=2)
    assert idx.seen_or_add("a", PARAGRAPH) is None
    other = (
        "Quarterly revenue grew eleven percent on strong cloud demand, although operating margins "
        "narrowed as the company kept hiring engineers and expanding its data centres across Europe "
        "and Asia, executives told analysts on the earnings call."
    )
    assert idx.seen_or_add("b", other) is None
    assert idx.seen_or_add("c", chat("hi", "hello")) is None
    assert len(idx) == 3


def test_case_and_whitespace_variants_are_flagged() -> None:
    idx = NearDuplicateIndex()
    assert idx.seen_or_add("a", chat("Tell me a story.", PARAGRAPH)) is None
    shouty = chat("  TELL me   a STORY. ", "\n".join(PARAGRAPH.upper().split(" ")))
    assert idx.seen_or_add("b", shouty) == "a"
    plain = NearDuplicateIndex()  # plain strings are normalised the same way
    assert plain.seen_or_add("c", "  " + PARAGRAPH.lower().replace(" ", "\t  ")) is None
    assert plain.seen_or_add("d", PARAGRAPH) == "c"


def test_first_occurrence_wins() -> None:
    idx = NearDuplicateIndex()
    assert idx.seen_or_add("first", PARAGRAPH) is None
    assert idx.seen_or_add("second", PARAGRAPH) == "first"
    assert idx.seen_or_add("third", PARAGRAPH.upper()) == "first"
    assert len(idx) == 1
    # A key already kept cannot be reused; a duplicate's key was never kept, so it is free.
    with pytest.raises(ValueError, match="already in the index"):
        idx.seen_or_add("first", "something else entirely")
    assert idx.seen_or_add("second", "something else entirely") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 0.0}, r"threshold must be in \(0, 1\]"),
        ({"threshold": -0.5}, r"threshold must be in \(0, 1\]"),
        ({"threshold": 1.01}, r"threshold must be in \(0, 1\]"),
        ({"threshold": float("nan")}, r"threshold must be in \(0, 1\]"),
        ({"num_perm": 8}, "num_perm must be >= 16"),
        ({"num_perm": 0}, "num_perm must be >= 16"),
        ({"ngram": 0}, "ngram must be >= 1"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NearDuplicateIndex(**kwargs)


@pytest.mark.parametrize(("threshold", "num_perm"), [(1.0, 128), (0.99, 16), (0.5, 16)])
def test_extreme_but_valid_settings_work(threshold: float, num_perm: int) -> None:
    idx = NearDuplicateIndex(threshold=threshold, num_perm=num_perm)
    assert idx.seen_or_add("a", PARAGRAPH) is None
    assert idx.seen_or_add("b", PARAGRAPH) == "a"
    assert idx.seen_or_add("c", "an unrelated short line") is None


def test_rejects_records_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="Conversation or str"):
        NearDuplicateIndex().seen_or_add("a", {"text": PARAGRAPH})  # type: ignore[arg-type]


def _corpus(seed: int = 7) -> tuple[list[tuple[str, Conversation]], dict[str, str]]:
    """2,000 chat records: 1,900 originals, then 100 near-copies of earlier originals spliced in.

    Every record shares one system prompt, as real SFT sets often do, so unrelated records are not
    trivially disjoint. Each planted copy gets one edit: a substituted, deleted or inserted word, or a
    case/whitespace change. Returns the records in order and planted key -> original key.
    """
    rng = random.Random(seed)
    vocab = [f"{rng.choice('bcdfghklmnprst')}{rng.choice('aeiou')}{i}" for i in range(5000)]
    system = "You are a helpful, honest assistant. Answer clearly and cite sources when you can."

    def sentence(k: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(k))

    originals = [(f"r{i}", chat(sentence(15), sentence(80), system)) for i in range(1900)]
    records = list(originals)
    planted: dict[str, str] = {}
    for j in range(100):
        src_pos = rng.randrange(len(originals) - 1)
        src_key, src = originals[src_pos]
        words = src.messages[2].content.split()
        kind = j % 4
        pos = rng.randrange(len(words))
        if kind == 0:
            words[pos] = rng.choice(vocab)
        elif kind == 1:
            del words[pos]
        elif kind == 2:
            words.insert(pos, rng.choice(vocab))
        else:
            words = [w.upper() if i % 3 == 0 else w for i, w in enumerate(words)]
        answer = "  ".join(words) if kind == 3 else " ".join(words)
        copy = chat(src.messages[1].content, answer, system)
        key = f"dup{j}"
        planted[key] = src_key
        # Splice the copy in somewhere after its original, so the original is the first occurrence.
        at = rng.randrange(records.index((src_key, src)) + 1, len(records) + 1)
        records.insert(at, (key, copy))
    assert len(records) == 2000
    return records, planted


def test_synthetic_corpus_recall_and_false_positives() -> None:
    records, planted = _corpus()
    idx = NearDuplicateIndex()  # the defaults: threshold 0.85, 128 permutations, 5-word shingles
    flagged = {key: match for key, conv in records if (match := idx.seen_or_add(key, conv)) is not None}
    found = sum(1 for key, src in planted.items() if flagged.get(key) == src)
    false_positives = [key for key in flagged if key not in planted]
    assert found >= 95, f"found only {found} of 100 planted near-duplicates"
    assert len(false_positives) < 5, false_positives
    assert len(idx) == 2000 - len(flagged)


def test_decisions_are_deterministic_across_indexes() -> None:
    records, _ = _corpus(seed=11)
    records = records[:600]

    def decisions() -> list[str | None]:
        idx = NearDuplicateIndex(threshold=0.8, seed=3)
        return [idx.seen_or_add(key, conv) for key, conv in records]

    first = decisions()
    assert first == decisions()
    assert any(d is not None for d in first)
