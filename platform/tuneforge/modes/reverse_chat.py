"""reverse-chat: play the user's side. The assistant's turns become the prompts, the user's the targets.

The first user turn has nothing before it, so the reversed record opens with a fixed start marker
(``PROMPTS["start"]``); the original's final assistant reply, which no user turn answers, is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation, Message
from tuneforge.modes.base import BuildOptions, Mode
from tuneforge.modes.chat import chat_examples

PROMPTS = {
    "system": "You are the user in this conversation. Write the user's next message.",
    "start": "(start the conversation)",
}


@dataclass(frozen=True)
class ReverseChatExample:
    """The original dialogue's (role, content) turns, user first, in their original roles."""

    turns: tuple[tuple[str, str], ...]


def compile_reverse_chat(ex: ReverseChatExample) -> Conversation:
    swap = {"user": "assistant", "assistant": "user"}
    msgs = [Message("system", PROMPTS["system"]), Message("user", PROMPTS["start"])]
    msgs += [Message(swap[r], c) for r, c in ex.turns]
    if msgs[-1].role == "user":
        msgs.pop()
    return Conversation(tuple(msgs), mode="chat")


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[ReverseChatExample]:
    """Any chat data, roles swapped (a single exchange yields one target: the opening user turn)."""
    for chat in chat_examples(sources, opts):
        yield ReverseChatExample(chat.turns)


MODE = Mode(
    name="reverse-chat",
    learns="play the user's side: given the assistant's turns, produce the user turns",
    structure=ReverseChatExample,
    prompts=PROMPTS,
    compile=compile_reverse_chat,
    build=build,
    metric="rougeL",
    metrics=("eval_loss", "rougeL"),
    sources="any chat data (roles swapped)",
)
