"""editor: return the same text edited for correctness and clarity.

Pairs come from parallel data (two line-aligned files such as JFLEG ``.src``/``.ref0``, or records
with source/target fields, or arXivEdits revisions) or from clean text corrupted with a seed:
typos, agreement errors, punctuation and word order. A share of clean inputs is kept unchanged so
the model also learns to leave correct text alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.sources import first_key, read_lines, records, sentences, suffix, texts

PROMPTS = {"system": "Edit the text for correctness and clarity. Return the whole corrected text."}

AGREEMENT = {
    "is": "are",
    "are": "is",
    "was": "were",
    "were": "was",
    "has": "have",
    "have": "has",
    "does": "do",
    "do": "does",
    "a": "an",
    "an": "a",
    "this": "these",
    "these": "this",
}


@dataclass(frozen=True)
class EditorExample:
    """A text as written and the same text corrected."""

    source: str
    corrected: str


def compile_editor(ex: EditorExample) -> Conversation:
    return conversation(PROMPTS["system"], ("user", ex.source), ("assistant", ex.corrected))


def _typo(words: list[str], rng: random.Random) -> bool:
    idx = [i for i, w in enumerate(words) if len(w) > 3 and w.isalpha()]
    if not idx:
        return False
    i = rng.choice(idx)
    w, j = words[i], rng.randrange(1, len(words[i]) - 1)
    kind = rng.randrange(3)
    words[i] = (
        (w[:j] + w[j + 1] + w[j] + w[j + 2 :])
        if kind == 0
        else (w[:j] + w[j + 1 :] if kind == 1 else w[:j] + w[j] + w[j:])
    )
    return words[i] != w


def _agreement(words: list[str], rng: random.Random) -> bool:
    idx = [i for i, w in enumerate(words) if w.lower() in AGREEMENT]
    if not idx:
        return False
    i = rng.choice(idx)
    swap = AGREEMENT[words[i].lower()]
    words[i] = swap.capitalize() if words[i][0].isupper() else swap
    return True


def _punctuation(words: list[str], rng: random.Random) -> bool:
    idx = [i for i, w in enumerate(words) if w and w[-1] in ",.;:!?"]
    if not idx:
        return False
    i = rng.choice(idx)
    words[i] = words[i][:-1]
    return True


def _word_order(words: list[str], rng: random.Random) -> bool:
    idx = [i for i in range(1, len(words) - 2) if words[i].isalpha() and words[i + 1].isalpha()]
    if not idx:
        return False
    i = rng.choice(idx)
    words[i], words[i + 1] = words[i + 1], words[i]
    return True


CORRUPTIONS: dict[str, Callable[[list[str], random.Random], bool]] = {
    "typo": _typo,
    "agreement": _agreement,
    "punctuation": _punctuation,
    "word_order": _word_order,
}


def corrupt(
    text: str, rng: random.Random, n_edits: int = 1, kinds: Sequence[str] = tuple(CORRUPTIONS)
) -> str:
    """``text`` with ``n_edits`` seeded errors of the given kinds (whitespace-separated words)."""
    words = text.split()
    done = attempts = 0
    while done < n_edits and attempts < 10 * n_edits:
        attempts += 1
        done += CORRUPTIONS[rng.choice(list(kinds))](words, rng)
    return " ".join(words)


def synthetic_pairs(clean: Sequence[str], opts: BuildOptions) -> Iterator[EditorExample]:
    """Corrupt clean sentences; ``keep_clean`` (default 0.1) of them are left correct on purpose."""
    keep, max_edits = float(opts.opt("keep_clean", 0.1)), int(opts.opt("max_edits", 2))
    kinds = [k for k in str(opts.opt("kinds", ",".join(CORRUPTIONS))).split(",") if k]
    for sent in clean:
        if opts.rng.random() < keep:
            opts.counts["kept_clean"] += 1
            yield EditorExample(sent, sent)
            continue
        bad = corrupt(sent, opts.rng, opts.rng.randint(1, max_edits), kinds)
        if bad == sent:  # e.g. two swaps that undo each other: not a pair worth training on
            opts.counts["skipped_unchanged"] += 1
            continue
        opts.counts["corrupted"] += 1
        yield EditorExample(bad, sent)


def parallel_pairs(src: str, ref: str, opts: BuildOptions) -> Iterator[EditorExample]:
    """Two line-aligned files: line i of ``src`` is corrected as line i of ``ref``."""
    a, b = read_lines(src), read_lines(ref)
    if len(a) != len(b):
        raise ValueError(f"{src} has {len(a)} lines but {ref} has {len(b)}; line-aligned files must match")
    for s, t in zip(a, b, strict=True):
        if s.strip() and t.strip():
            opts.counts["parallel"] += 1
            yield EditorExample(s.strip(), t.strip())


def record_pairs(path: str, opts: BuildOptions) -> Iterator[EditorExample]:
    """Records with source/target fields (also ``sentence-1``/``sentence-2`` of arXivEdits)."""
    for rec in records(path):
        s = first_key(rec, "source", "original", "input", "sentence-1", "before", "text")
        t = first_key(rec, "corrected", "target", "output", "sentence-2", "after", "edited")
        if isinstance(s, str) and isinstance(t, str):
            opts.counts["parallel"] += 1
            yield EditorExample(s.strip(), t.strip())


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[EditorExample]:
    """``--from SRC REF`` (two text files: parallel) | ``--from CLEAN.txt`` (synthetic corruption) |
    ``--from pairs.jsonl`` (source/target records)."""
    if (
        len(sources) == 2
        and all(suffix(s) not in (".json", ".jsonl", ".parquet") for s in sources)
        and not opts.opt("synthetic", False)
    ):
        yield from parallel_pairs(sources[0], sources[1], opts)
        return
    clean: list[str] = []
    max_words = int(opts.opt("max_words", 40))
    for src in sources:
        if suffix(src) in (".json", ".jsonl") and _has_pair_fields(src):
            yield from record_pairs(src, opts)
        else:
            clean += [s for t in texts([src]) for s in sentences(t) if 3 <= len(s.split()) <= max_words]
    yield from synthetic_pairs(clean, opts)


def _has_pair_fields(path: str) -> bool:
    first = records(path)[0]
    return bool({"corrected", "target", "sentence-2", "after", "edited"} & set(first))


MODE = Mode(
    name="editor",
    learns="return the same text edited for correctness and clarity",
    structure=EditorExample,
    prompts=PROMPTS,
    compile=compile_editor,
    build=build,
    metric="gleu",
    metrics=("gleu", "exact_match", "chrf", "kept_rate"),
    sources="two line-aligned text files (source, corrected); clean text (synthetic errors); pair records",
)
