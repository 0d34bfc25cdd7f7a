"""filter: return the text keeping only the sentences that pass a set of fuzzy filters.

Filters are short natural-language criteria (``about cooking``). Synthetic pairs mix on-topic and
off-topic sentences under a topic filter: the topics come from one text file per topic (the file
name is the topic), or from a small built-in generator when no source is given.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data import Conversation
from tuneforge.evaluation.metric_table import register_mode_metric
from tuneforge.evaluation.mode_metrics import sentence_metrics
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.sources import records, sentences, suffix, texts

PROMPTS = {
    "system": "Return the text keeping only the sentences that pass every filter, unchanged and in order.",
    "user": "Filters:\n{filters}\n\nText:\n{text}",
    "filter": "about {topic}",
    "none": "(nothing passes the filters)",
}

#: The built-in generator's topics: subjects, verbs and objects that only make sense on topic.
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "cooking": (
        ("The chef", "My aunt", "The baker", "Our cook"),
        ("stirs", "bakes", "seasons", "chops"),
        ("the onions", "a loaf of bread", "the tomato soup", "fresh garlic"),
    ),
    "sports": (
        ("The striker", "Our coach", "The goalkeeper", "The team"),
        ("scores", "trains", "defends", "wins"),
        ("the final match", "a penalty kick", "the league title", "every game"),
    ),
    "weather": (
        ("The storm", "A cold front", "The rain", "The wind"),
        ("hits", "reaches", "soaks", "sweeps"),
        ("the coast", "the northern hills", "the valley", "the harbor"),
    ),
    "finance": (
        ("The bank", "Our investor", "The market", "The fund"),
        ("buys", "sells", "lends", "values"),
        ("the shares", "a bond", "the quarterly profit", "the interest rate"),
    ),
    "music": (
        ("The band", "Our pianist", "The choir", "The drummer"),
        ("plays", "records", "rehearses", "tunes"),
        ("a new song", "the symphony", "the old guitar", "the concert"),
    ),
    "computing": (
        ("The server", "Our compiler", "The program", "The database"),
        ("crashes", "compiles", "stores", "caches"),
        ("the source code", "a large file", "the user records", "the query"),
    ),
}


@dataclass(frozen=True)
class FilterExample:
    """A text, the filters, and the parts of the text (sentences) that pass them."""

    text: str
    filters: tuple[str, ...]
    kept: tuple[str, ...]


def compile_filter(ex: FilterExample) -> Conversation:
    user = PROMPTS["user"].format(filters="\n".join(f"- {f}" for f in ex.filters), text=ex.text)
    answer = " ".join(ex.kept) if ex.kept else PROMPTS["none"]
    return conversation(PROMPTS["system"], ("user", user), ("assistant", answer))


def generated_sentence(topic: str, rng: random.Random) -> str:
    subjects, verbs, objects = TOPICS[topic]
    return f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."


def topic_pools(sources: Sequence[str], rng: random.Random, per_topic: int) -> dict[str, list[str]]:
    """Sentences per topic: one ``.txt``/``.md`` file per topic, or the built-in generator."""
    if not sources:
        return {t: [generated_sentence(t, rng) for _ in range(per_topic)] for t in TOPICS}
    pools = {Path(s).stem.replace("_", " "): [x for t in texts([s]) for x in sentences(t)] for s in sources}
    if len(pools) < 2:
        raise ValueError("filter: synthetic mixing needs at least two topic files (one per topic)")
    return pools


def mixed_examples(pools: dict[str, list[str]], n: int, opts: BuildOptions) -> Iterator[FilterExample]:
    """``n`` texts of 3-6 sentences from a topic and others; the topic's sentences are the kept part."""
    rng, topics = opts.rng, sorted(pools)
    max_sent = int(opts.opt("max_sentences", 6))
    for _ in range(n):
        topic = rng.choice(topics)
        others = [t for t in topics if t != topic]
        size = rng.randint(3, max_sent)
        picked = [(t, rng.choice(pools[t])) for t in (rng.choice([topic, *others]) for _ in range(size))]
        picked = list(dict.fromkeys(picked))
        opts.counts["synthetic"] += 1
        yield FilterExample(
            " ".join(s for _, s in picked),
            (PROMPTS["filter"].format(topic=topic),),
            tuple(s for t, s in picked if t == topic),
        )


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[FilterExample]:
    """``(text, filters, kept)`` records from JSON/JSONL, else synthetic topic mixing (``n``, default
    1000 texts) over topic files or, with no ``--from``, the built-in topics."""
    if sources and all(suffix(s) in (".json", ".jsonl") for s in sources):
        for src in sources:
            for rec in records(src):
                filters = rec.get("filters") or []
                kept = rec.get("kept") or []
                opts.counts["records"] += 1
                yield FilterExample(
                    rec["text"],
                    tuple([filters] if isinstance(filters, str) else filters),
                    tuple([kept] if isinstance(kept, str) else kept),
                )
        return
    n = int(opts.opt("n", opts.limit or 1000))
    yield from mixed_examples(topic_pools(sources, opts.rng, int(opts.opt("per_topic", 400))), n, opts)


MODE = Mode(
    name="filter",
    learns="return the text with only the parts that pass fuzzy filters",
    structure=FilterExample,
    prompts=PROMPTS,
    compile=compile_filter,
    build=build,
    metric="sentence_f1",
    metrics=("sentence_f1", "sentence_precision", "sentence_recall", "exact_match"),
    sources="(text, filters, kept) records; one text file per topic; nothing (built-in topics)",
)

for _name, _fn in sentence_metrics(PROMPTS["none"]).items():  # "keep nothing" is the empty sentence set
    register_mode_metric(_name, _fn)
