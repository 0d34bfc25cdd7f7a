"""domain: continue pre-training on raw domain text (domain-adaptive tuning, seed 001).

Records are raw text (IR ``mode="pretrain"``): no chat markup, every token trained, long documents
chunked into ``max_seq_len`` blocks by the data layer. ``data build`` writes ``{"text"}`` JSONL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation, Message
from tuneforge.modes.base import BuildOptions, Mode
from tuneforge.modes.sources import texts

PROMPTS: dict[str, str] = {}  # raw text has no prompt


@dataclass(frozen=True)
class DomainExample:
    """One document of domain text."""

    text: str


def compile_domain(ex: DomainExample) -> Conversation:
    return Conversation((Message("assistant", ex.text, train=True),), mode="pretrain")


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[DomainExample]:
    """Text files (lines; ``.md`` paragraphs) or any data file's message text; ``min_chars`` (default
    20) drops fragments too short to teach anything about the domain."""
    min_chars = int(opts.opt("min_chars", 20))
    for text in texts(sources):
        opts.counts["read"] += 1
        if len(text) < min_chars:
            opts.counts["skipped_short"] += 1
            continue
        yield DomainExample(text)


MODE = Mode(
    name="domain",
    learns="continue pre-training on raw domain text",
    structure=DomainExample,
    prompts=PROMPTS,
    compile=compile_domain,
    build=build,
    metric="perplexity",
    metrics=("eval_loss",),
    sources="raw text corpora (.txt lines, .md paragraphs, text JSONL, any data file)",
    record_format="pretrain",
)
