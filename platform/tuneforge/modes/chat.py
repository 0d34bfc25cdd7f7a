"""chat: hold a multi-turn dialogue (every assistant turn trained)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation, Message
from tuneforge.modes.base import BuildOptions, Mode
from tuneforge.modes.sources import conversations

PROMPTS = {"system": ""}  # a plain chat needs no header; a record's own system prompt is kept


@dataclass(frozen=True)
class ChatExample:
    """Alternating (role, content) turns, user first, and an optional system prompt."""

    turns: tuple[tuple[str, str], ...]
    system: str = ""


def compile_chat(ex: ChatExample) -> Conversation:
    system = ex.system or PROMPTS["system"]
    msgs = ([Message("system", system)] if system else []) + [Message(r, c) for r, c in ex.turns]
    return Conversation(tuple(msgs), mode="chat")


def chat_examples(sources: Sequence[str], opts: BuildOptions) -> Iterator[ChatExample]:
    """Text-only user/assistant dialogues from any chat or instruction file (tool turns are skipped)."""
    for conv in conversations(sources):
        opts.counts["read"] += 1
        system = next((m.content for m in conv.messages if m.role == "system"), "")
        turns = tuple(
            (m.role, m.content)
            for m in conv.messages
            if m.role in ("user", "assistant") and m.content.strip() and m.tool_calls is None
        )
        if len(turns) < 2 or turns[0][0] != "user" or not any(r == "assistant" for r, _ in turns):
            opts.counts["skipped_not_a_dialogue"] += 1
            continue
        yield ChatExample(turns, system)


MODE = Mode(
    name="chat",
    learns="hold a multi-turn dialogue",
    structure=ChatExample,
    prompts=PROMPTS,
    compile=compile_chat,
    build=chat_examples,
    metric="eval_loss",
    metrics=("eval_loss", "rougeL"),
    sources="chat data (OpenAI, ShareGPT, Alpaca with history)",
)
