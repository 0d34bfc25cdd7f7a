"""What a tuning mode is: an input structure, a compiler to the chat IR, builders, and a metric.

A mode is data plus three functions, declared once in its own module as ``MODE = Mode(...)``.
Prompts (system prompt, task header, markers) live in the module's ``PROMPTS`` dict, so the trainer
never hard-codes a mode and a new mode is one new module (docs/modes.md has a worked example).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from tuneforge.data.ir import Conversation, Message
from tuneforge.data.openai_format import to_openai as to_openai  # the one IR -> OpenAI writer (re-exported)


@dataclass
class BuildOptions:
    """Knobs every builder gets: a seeded RNG (same seed, same pairs), a cap, free-form options.

    ``counts`` is where builders tally what they read, built and skipped (shown by ``data build``).
    """

    seed: int = 0
    limit: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def opt(self, key: str, default: Any) -> Any:
        """An ``--option key=value`` cast to the default's type (so ``ratio=0.3`` is a float)."""
        if key not in self.options:
            return default
        raw = self.options[key]
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        return type(default)(raw) if default is not None else raw


Compiler = Callable[[Any], Conversation]
Builder = Callable[[Sequence[str], BuildOptions], Iterator[Any]]


@dataclass(frozen=True)
class Mode:
    """One tuning mode. ``metric`` is the headline metric; ``metrics`` all that ``eval --mode`` reports."""

    name: str
    learns: str
    structure: type
    prompts: Mapping[str, str]
    compile: Compiler
    build: Builder
    metric: str
    metrics: tuple[str, ...]
    sources: str
    #: IR shape of compiled records: "chat" (OpenAI chat JSONL) or "pretrain" (``{"text"}`` JSONL).
    record_format: str = "chat"

    @property
    def inputs(self) -> list[str]:
        """Field names of the input structure (what ``modes list`` shows)."""
        return [f.name for f in fields(self.structure)]

    def build_records(self, sources: Sequence[str], opts: BuildOptions) -> list[Conversation]:
        """Build the structures from ``sources`` and compile each one (at most ``opts.limit``)."""
        out: list[Conversation] = []
        for item in self.build(sources, opts):
            out.append(self.compile(item))
            if opts.limit is not None and len(out) >= opts.limit:
                break
        opts.counts["records"] = len(out)
        return out


def turn(role: str, content: str, train: bool | None = None) -> Message:
    """A message (shorthand used by the compilers)."""
    return Message(role, content, train)


def conversation(system: str | None, *turns: tuple[str, str], mode: str = "instruct") -> Conversation:
    """``[system] + (role, content)...`` as an IR record; an empty system prompt is left out."""
    msgs = ([Message("system", system)] if system else []) + [Message(r, c) for r, c in turns]
    return Conversation(tuple(msgs), mode=mode)


def take(items: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """At most ``limit`` items (all with None)."""
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            return
        yield item
