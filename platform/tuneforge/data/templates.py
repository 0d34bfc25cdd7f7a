"""Chat templates: render a ``Conversation`` to text, and encode it to ids with an exact loss mask.

Why segment by segment: the loss mask must cover exactly the trained assistant tokens (content and
the end-of-turn marker, which teaches the model to stop). Tokenizing each rendered piece separately
and concatenating gives token boundaries that coincide with the piece boundaries, so the mask needs
no offset arithmetic. For a ByteLevel BPE tokenizer with the template markers as special tokens,
the concatenation equals tokenizing the whole rendered string (tested on the bundled data) whenever
the content does not start with whitespace. If it does, the whole string's pre-tokenizer can group the
header's ``\\n`` with it (``"\\n  there"`` -> ``"\\n "``, ``" there"``), and a learned merge of that
group would differ from the segment-wise ids; the mask stays exact either way. Without the markers as
special tokens they are plain text and still masked exactly, but whole-string tokenization may then
merge across a marker's edge.

Message content is tokenized with ``split_special_tokens=True``: text a user typed, such as a literal
``<|im_end|>``, stays text and cannot forge a turn boundary. Markers come only from the template.

Templates live in a small registry (``TEMPLATES``) so later formats are one entry each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.data.ir import Conversation, Message

IGNORE_INDEX = -100
CHATML_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|pad|>"]
TRUNCATION_MODES = ("truncate", "drop")


@dataclass(frozen=True)
class ChatTemplate:
    """A turn-based template: ``turn_start(role) + content + turn_end + turn_sep`` per message.

    ``turn_end`` is trained together with an assistant turn's content; ``turn_start`` and
    ``turn_sep`` are never trained (the model does not need to learn the markup it is given).
    """

    name: str
    turn_start: str
    turn_end: str
    turn_sep: str

    def header(self, role: str) -> str:
        return self.turn_start.format(role=role)

    def render_message(self, message: Message) -> str:
        return self.header(message.role) + message.content + self.turn_end + self.turn_sep

    def segments(self, message: Message) -> Iterator[tuple[str, bool, bool]]:
        """The pieces of one rendered message as ``(text, is_content, trained)``, in order."""
        yield self.header(message.role), False, False
        yield message.content, True, message.trained
        yield self.turn_end, False, message.trained
        yield self.turn_sep, False, False


CHATML = ChatTemplate(name="chatml", turn_start="<|im_start|>{role}\n", turn_end="<|im_end|>", turn_sep="\n")
TEMPLATES: dict[str, ChatTemplate] = {CHATML.name: CHATML}


def get_template(name: str) -> ChatTemplate:
    """Look a template up by name; unknown names list the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def render_text(conv: Conversation, template: str = "chatml") -> str:
    """The full rendered conversation (tokenizer training, previews)."""
    tpl = get_template(template)
    return "".join(tpl.render_message(m) for m in conv.messages)


def render_prompt(conv_or_messages: Conversation | Sequence[Message], template: str = "chatml") -> str:
    """The generation prompt: every message, then an open assistant header.

    A trailing assistant message is left out, so an evaluation record renders to the prompt whose
    reference answer is that message.
    """
    tpl = get_template(template)
    messages = tuple(
        conv_or_messages.messages if isinstance(conv_or_messages, Conversation) else conv_or_messages
    )
    if messages and messages[-1].role == "assistant":
        messages = messages[:-1]
    return "".join(tpl.render_message(m) for m in messages) + tpl.header("assistant")


def _encode(tokenizer: Any, text: str, literal: bool) -> list[int]:
    """Ids of one piece, never with BOS/EOS; ``literal`` keeps special-token strings as plain text."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=literal)["input_ids"])


def _bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]`` if the tokenizer has a BOS token and adds it by default, else ``[]``."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos] else []


def encode_conversation(
    conv: Conversation,
    tokenizer: Any,
    template: str = "chatml",
    max_seq_len: int | None = None,
    train_on_prompt: bool = False,
    truncation: str = "truncate",
) -> dict[str, list[int]] | None:
    """Token ids and labels for one conversation, or None when it must be dropped.

    Labels are ``-100`` except on trained messages' content and end marker (``train_on_prompt``
    trains every token, markup and system/user turns included). Longer than ``max_seq_len``:
    ``truncation="truncate"`` keeps the head, ``"drop"`` returns None. A result with no trained
    token left returns None too, because it would contribute nothing but padding to a batch.
    """
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"unknown truncation {truncation!r}; expected one of {', '.join(TRUNCATION_MODES)}")
    tpl = get_template(template)
    input_ids = _bos_ids(tokenizer)
    labels = list(input_ids) if train_on_prompt else [IGNORE_INDEX] * len(input_ids)
    for message in conv.messages:
        for text, is_content, trained in tpl.segments(message):
            ids = _encode(tokenizer, text, literal=is_content)
            input_ids += ids
            labels += ids if trained or train_on_prompt else [IGNORE_INDEX] * len(ids)
    if max_seq_len is not None and len(input_ids) > max_seq_len:
        if truncation == "drop":
            return None
        input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}
