"""diff: given a text and a unified diff, return the text with the changes applied.

Diffs are computed with ``difflib`` (line-based, headers ``--- before``/``+++ after``) from pairs of
text versions, or taken from real commits (each hunk of a ``git diff`` becomes one example: its
context and removed lines are the text, its context and added lines the result). ``apply_unified_diff``
is the reference implementation: every built example is checked with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.editor import corrupt
from tuneforge.modes.sources import first_key, read_lines, records, sentences, suffix, texts

PROMPTS = {
    "system": "Apply the unified diff to the text. Return the full updated text.",
    "user": "Text:\n{text}\n\nDiff:\n{diff}",
}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class DiffExample:
    """A text, a unified diff against it, and the text with the diff applied."""

    text: str
    diff: str
    result: str


def compile_diff(ex: DiffExample) -> Conversation:
    return conversation(
        PROMPTS["system"],
        ("user", PROMPTS["user"].format(text=ex.text, diff=ex.diff)),
        ("assistant", ex.result),
    )


def unified_diff(before: str, after: str, context: int = 1) -> str:
    """Line diff of two versions (no trailing-newline subtleties: texts are compared as lines)."""
    lines = difflib.unified_diff(
        before.split("\n"), after.split("\n"), "before", "after", n=context, lineterm=""
    )
    return "\n".join(lines)


def apply_unified_diff(text: str, diff: str) -> str:
    """Apply a unified diff to ``text``; a context or removed line that does not match raises ValueError."""
    src, out, pos = text.split("\n"), [], 0
    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        m = _HUNK.match(lines[i])
        i += 1
        if not m:
            continue
        start = int(m.group(1)) - (0 if m.group(2) == "0" else 1)
        out += src[pos:start]
        pos = start
        while i < len(lines) and not lines[i].startswith("@@"):
            tag, body = lines[i][:1], lines[i][1:]
            if tag in (" ", "-"):
                if pos >= len(src) or src[pos] != body:
                    raise ValueError(f"diff line {i + 1} does not match the text: {lines[i]!r}")
                pos += 1
                if tag == " ":
                    out.append(body)
            elif tag == "+":
                out.append(body)
            i += 1
    return "\n".join(out + src[pos:])


def example(before: str, after: str, opts: BuildOptions) -> DiffExample | None:
    """A checked example, or None when the versions are identical."""
    if before == after:
        opts.counts["skipped_identical"] += 1
        return None
    d = unified_diff(before, after, int(opts.opt("context", 1)))
    assert apply_unified_diff(before, d) == after, "difflib output must apply to its own input"
    return DiffExample(before, d, after)


def git_hunks(diff_text: str) -> Iterator[tuple[str, str]]:
    """(before, after) text of each hunk of a ``git diff`` (context + removed / context + added)."""
    before: list[str] | None = None
    after: list[str] = []
    for line in diff_text.split("\n") + ["@@end"]:
        if line.startswith("@@") or line.startswith("diff --git"):
            if before is not None and (before or after):
                yield "\n".join(before), "\n".join(after)
            before, after = ([], []) if line.startswith("@@") and line != "@@end" else (None, [])
        elif before is not None and line[:1] in (" ", "-", "+"):
            if line[:1] != "+":
                before.append(line[1:])
            if line[:1] != "-":
                after.append(line[1:])


def version_pairs(sources: Sequence[str], opts: BuildOptions) -> Iterator[tuple[str, str]]:
    """(before, after) pairs from every supported source form (see ``build``)."""
    if (
        len(sources) == 2
        and all(suffix(s) in (".txt", ".md") for s in sources)
        and not opts.opt("synthetic", False)
    ):
        a, b = read_lines(sources[0]), read_lines(sources[1])
        if len(a) != len(b):
            raise ValueError(
                f"{sources[0]} and {sources[1]} must be line-aligned ({len(a)} vs {len(b)} lines)"
            )
        group = int(opts.opt("group", 4))
        for k in range(0, len(a), group):
            opts.counts["line_groups"] += 1
            yield "\n".join(a[k : k + group]), "\n".join(b[k : k + group])
        return
    for src in sources:
        ext = suffix(src)
        if opts.opt("synthetic", False):
            yield from synthetic_versions(src, opts)
        elif ext in (".diff", ".patch"):
            with open(src, encoding="utf-8") as f:
                hunks = list(git_hunks(f.read()))
            opts.counts["commit_hunks"] += len(hunks)
            yield from hunks
        elif ext in (".json", ".jsonl"):
            for rec in records(src):
                if isinstance(rec.get("diff"), str):
                    hunks = list(git_hunks(rec["diff"]))
                    opts.counts["commit_hunks"] += len(hunks)
                    yield from hunks
                else:
                    a = first_key(rec, "before", "old", "original", "sentence-1", "source")
                    b = first_key(rec, "after", "new", "revised", "sentence-2", "target")
                    if isinstance(a, str) and isinstance(b, str):
                        opts.counts["version_records"] += 1
                        yield a, b
        else:
            yield from synthetic_versions(src, opts)


def synthetic_versions(src: str, opts: BuildOptions) -> Iterator[tuple[str, str]]:
    """Clean text cut into ``lines``-line chunks (default 3 sentences of at most ``max_words`` words);
    the later version fixes 1-2 seeded errors in the earlier one, and sometimes drops an inserted line."""
    n_lines = int(opts.opt("lines", 3))
    max_words = int(opts.opt("max_words", 25))
    sents = [s for t in texts([src]) for s in sentences(t) if 3 <= len(s.split()) <= max_words]
    rng = opts.rng
    for k in range(0, len(sents) - n_lines + 1, n_lines):
        after = sents[k : k + n_lines]
        before = list(after)
        for j in rng.sample(range(n_lines), rng.randint(1, min(2, n_lines))):
            before[j] = corrupt(before[j], rng, 1)
        if rng.random() < 0.15:
            before.insert(rng.randrange(n_lines + 1), rng.choice(sents))
        opts.counts["synthetic"] += 1
        yield "\n".join(before), "\n".join(after)


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[DiffExample]:
    """``--from BEFORE.txt AFTER.txt`` (line-aligned, grouped ``group`` lines) | ``.diff`` files or a
    commit JSONL with a ``diff`` field (real commits) | before/after records | clean text (synthetic)."""
    max_chars = int(opts.opt("max_chars", 4000))
    for before, after in version_pairs(sources, opts):
        ex = example(before, after, opts)
        if ex is None:
            continue
        if len(ex.text) + len(ex.diff) > max_chars:
            opts.counts["skipped_too_long"] += 1
            continue
        yield ex


MODE = Mode(
    name="diff",
    learns="given a text and a unified diff, return the text with the changes applied",
    structure=DiffExample,
    prompts=PROMPTS,
    compile=compile_diff,
    build=build,
    metric="exact_match",
    metrics=("exact_match", "cer", "chrf"),
    sources="two versions (line-aligned files, before/after records); .diff files, commit JSONL; clean text",
)
