"""chat+instruct: a dialogue that switches to following one instruction (seed 004).

The switch is a ``### Instruction`` turn. A record has two kinds of part: the chat part, then
(optionally) the instruction part. The switch is two turns of data (``PROMPTS``): the user's marker
and the model's acknowledgement, then the instruction and its answer. Builders mix chat and
instruction sources at a configurable ratio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation, Message
from tuneforge.data.text_parse import has_user_marker
from tuneforge.evaluation.metric_table import register_mode_metric
from tuneforge.evaluation.mode_metrics import part_rouge
from tuneforge.modes.base import BuildOptions, Mode
from tuneforge.modes.chat import ChatExample, chat_examples
from tuneforge.modes.instruct import InstructExample, instruct_examples

PROMPTS = {
    "system": "You chat naturally. When the user writes '### Instruction', switch to instruct mode.",
    "switch": "### Instruction",
    "ack": "Okay, switching to instruct mode. What do you want me to do?",
}


@dataclass(frozen=True)
class ChatInstructExample:
    """A chat prefix (may be empty) followed by an optional switch to one instruction."""

    chat: ChatExample
    instruction: InstructExample | None = None


def compile_chat_instruct(ex: ChatInstructExample) -> Conversation:
    msgs = [Message("system", PROMPTS["system"])] + [Message(r, c) for r, c in ex.chat.turns]
    if ex.instruction is not None:
        msgs += [
            Message("user", PROMPTS["switch"]),
            Message("assistant", PROMPTS["ack"]),
            Message("user", ex.instruction.prompt),
            Message("assistant", ex.instruction.output),
        ]
    return Conversation(tuple(msgs), mode="chat")


def is_instruct_part(conv: Conversation) -> bool:
    """Whether the record's last answer belongs to the instruction part (the switch marker came before it)."""
    return has_user_marker(conv, PROMPTS["switch"])


def is_chat_part(conv: Conversation) -> bool:
    """Whether the record's last answer belongs to the chat part (no switch marker before it)."""
    return not is_instruct_part(conv)


register_mode_metric("rougeL_chat", part_rouge("chat", is_chat_part), needs_context=True)
register_mode_metric("rougeL_instruct", part_rouge("instruct", is_instruct_part), needs_context=True)


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[ChatInstructExample]:
    """``--from CHAT... INSTRUCT...``: sources whose records are multi-turn count as chat, the rest as
    instructions. ``ratio`` (default 0.5) is the share of records that switch to an instruction part;
    the others stay plain chat. A switching record pairs a chat with the next instruction."""
    ratio = float(opts.opt("ratio", 0.5))
    chats: list[ChatExample] = []
    instructs: list[InstructExample] = []
    for src in sources:
        sub = BuildOptions(opts.seed, None, opts.options)
        found = list(chat_examples([src], sub))
        if found and sum(len(c.turns) for c in found) / len(found) > 2.5:
            chats += found
        else:
            instructs += list(instruct_examples([src], sub))
    opts.counts["chat_read"], opts.counts["instruct_read"] = len(chats), len(instructs)
    if not instructs:  # one chat-only source: its single exchanges double as instructions
        instructs = [InstructExample(c.turns[0][1], c.turns[1][1]) for c in chats if len(c.turns) >= 2]
    opts.rng.shuffle(instructs)
    for i, chat in enumerate(chats):
        if instructs and opts.rng.random() < ratio:
            opts.counts["switched"] += 1
            yield ChatInstructExample(chat, instructs[i % len(instructs)])
        else:
            opts.counts["chat_only"] += 1
            yield ChatInstructExample(chat)


MODE = Mode(
    name="chat+instruct",
    learns="chat, and switch to following an instruction inside the same dialogue",
    structure=ChatInstructExample,
    prompts=PROMPTS,
    compile=compile_chat_instruct,
    build=build,
    metric="rougeL",
    metrics=("eval_loss", "rougeL", "rougeL_chat", "rougeL_instruct"),
    sources="chat files plus instruction files, mixed with --option ratio=R",
)
