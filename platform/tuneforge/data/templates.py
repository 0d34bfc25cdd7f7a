"""Text chat templates: render a ``Conversation`` to text, and encode it to ids with an exact loss mask.

Why segment by segment: the loss mask must cover exactly the trained assistant tokens (content and
the end-of-turn marker, which teaches the model to stop). Tokenizing each rendered piece separately
and concatenating gives token boundaries that coincide with the piece boundaries, so the mask needs
no offset arithmetic. For a ByteLevel BPE tokenizer with the template markers as special tokens,
the concatenation equals tokenizing the whole rendered string (tested on the bundled data) whenever
the content does not start with whitespace. If it does, the whole string's pre-tokenizer can group the
header's ``\\n`` with it (``"\\n  there"`` -> ``"\\n "``, ``" there"``), and a learned merge of that
group would differ from the segment-wise ids; the mask stays exact either way.

Message content is tokenized with ``split_special_tokens=True``: text a user typed, such as a literal
``<|im_end|>``, stays text and cannot forge a turn boundary. Markers come only from the template.

Tools (ChatML, Hermes/Qwen convention): the offered tools are listed in the system prompt inside
``<tools>``; an assistant tool call is rendered inside its turn as ``<tool_call>\\n{json}\\n</tool_call>``
(trained like the rest of the turn); a tool result is a ``tool`` turn. The template table
``TEMPLATES`` holds chatml, llama3 and alpaca; ``encode.py`` adds ``auto`` and ``tokenizer``
(the model's own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.data.ir import Conversation, Message

IGNORE_INDEX = -100
TRUNCATION_MODES = ("truncate", "drop")
EOS_PLACEHOLDER = "{eos}"
TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call>'
)


@dataclass(frozen=True)
class ChatTemplate:
    """A turn-based template: ``start(role) + body + end(role) + turn_sep`` per message.

    ``end`` is trained together with an assistant turn's body; ``start`` and ``turn_sep`` are never
    trained (the model does not need to learn the markup it is given). ``starts``/``ends`` override
    the defaults per role (alpaca's "### Instruction:" headers); ``{eos}`` in an end is replaced with
    the tokenizer's EOS token when encoding.
    """

    name: str
    turn_start: str
    turn_end: str
    turn_sep: str
    role_labels: tuple[tuple[str, str], ...] = ()
    starts: tuple[tuple[str, str], ...] = ()
    ends: tuple[tuple[str, str], ...] = ()

    def header(self, role: str) -> str:
        override = dict(self.starts).get(role)
        if override is not None:
            return override
        return self.turn_start.format(role=dict(self.role_labels).get(role, role))

    def end(self, role: str, eos: str = "") -> str:
        return dict(self.ends).get(role, self.turn_end).replace(EOS_PLACEHOLDER, eos)

    def render_message(self, message: Message, eos: str = "") -> str:
        return self.header(message.role) + message_body(message) + self.end(message.role, eos) + self.turn_sep

    def segments(self, message: Message, eos: str = "") -> Iterator[tuple[str, bool, bool]]:
        """The pieces of one rendered message as ``(text, is_content, trained)``, in order."""
        yield self.header(message.role), False, False
        yield message_body(message), True, message.trained
        yield self.end(message.role, eos), False, message.trained
        yield self.turn_sep, False, False


CHATML = ChatTemplate(name="chatml", turn_start="<|im_start|>{role}\n", turn_end="<|im_end|>", turn_sep="\n")
LLAMA3 = ChatTemplate(
    name="llama3",
    turn_start="<|start_header_id|>{role}<|end_header_id|>\n\n",
    turn_end="<|eot_id|>",
    turn_sep="",
    role_labels=(("tool", "ipython"),),
)
ALPACA = ChatTemplate(
    name="alpaca",
    turn_start="",
    turn_end="",
    turn_sep="\n\n",
    starts=(
        ("system", ""),
        ("user", "### Instruction:\n"),
        ("assistant", "### Response:\n"),
        ("tool", "### Observation:\n"),
    ),
    ends=(("assistant", EOS_PLACEHOLDER),),
)
TEMPLATES: dict[str, ChatTemplate] = {t.name: t for t in (CHATML, LLAMA3, ALPACA)}


def get_template(name: str) -> ChatTemplate:
    """Look a text template up by name; unknown names list the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(["auto", *sorted(TEMPLATES), "tokenizer"])
        raise ValueError(f"unknown chat template {name!r}; known: {known}") from None


def tool_call_json(call: dict[str, Any]) -> str:
    return json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False)


def message_body(message: Message) -> str:
    """Content plus one ``<tool_call>`` block per call (the body a template wraps in markup)."""
    if not message.tool_calls:
        return message.content
    blocks = [f"<tool_call>\n{tool_call_json(c)}\n</tool_call>" for c in message.tool_calls]
    return "\n".join([message.content, *blocks] if message.content else blocks)


def tools_block(tools: Sequence[dict[str, Any]]) -> str:
    return TOOLS_HEADER + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools) + TOOLS_FOOTER


def prepared_messages(conv: Conversation, last_turn_only: bool = False) -> tuple[Message, ...]:
    """The messages a text template renders: tools folded into the system prompt, masks applied.

    ``last_turn_only`` keeps the loss only on the last trained message (earlier answers become
    context), the usual choice for multi-turn data whose early answers are weaker.
    """
    messages = list(conv.messages)
    if conv.tools:
        block = tools_block(conv.tools)
        if messages and messages[0].role == "system":
            first = messages[0]
            messages[0] = Message(
                "system", f"{first.content}\n\n{block}" if first.content else block, first.train
            )
        else:
            messages.insert(0, Message("system", block))
    if last_turn_only:
        trained = [i for i, m in enumerate(messages) if m.trained]
        keep = trained[-1] if trained else -1
        messages = [
            Message(m.role, m.content, False, m.tool_calls, m.name) if m.trained and i != keep else m
            for i, m in enumerate(messages)
        ]
    return tuple(messages)


def _text_template(template: str) -> ChatTemplate:
    """``auto``/``tokenizer`` have no text form without a tokenizer: they render as ChatML here."""
    return CHATML if template in ("auto", "tokenizer") else get_template(template)


def render_text(conv: Conversation, template: str = "chatml", eos: str = "") -> str:
    """The full rendered conversation (tokenizer training, previews); raw text for pretrain records."""
    if conv.mode == "pretrain":
        return conv.text
    tpl = _text_template(template)
    return "".join(tpl.render_message(m, eos) for m in prepared_messages(conv))


def render_prompt(conv_or_messages: Conversation | Sequence[Message], template: str = "chatml") -> str:
    """The generation prompt: every message, then an open assistant header.

    A trailing assistant message is left out, so an evaluation record renders to the prompt whose
    reference answer is that message.
    """
    tpl = _text_template(template)
    conv = (
        conv_or_messages
        if isinstance(conv_or_messages, Conversation)
        else Conversation(tuple(conv_or_messages))
    )
    messages = prepared_messages(conv)
    if messages and messages[-1].role == "assistant":
        messages = messages[:-1]
    return "".join(tpl.render_message(m) for m in messages) + tpl.header("assistant")


def encode_piece(tokenizer: Any, text: str, literal: bool) -> list[int]:
    """Ids of one piece, never with BOS/EOS; ``literal`` keeps special-token strings as plain text."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=literal)["input_ids"])


def bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]`` if the tokenizer has a BOS token and adds it by default, else ``[]``."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos] else []


#: One rendered piece: its text, its ids, whether its tokens are trained, and the role it belongs to.
Piece = tuple[str, list[int], bool, str]


def pieces_to_example(pieces: Sequence[Piece]) -> dict[str, list[int]]:
    """Concatenate pieces into ``{"input_ids", "labels"}`` (labels -100 on untrained pieces)."""
    input_ids: list[int] = []
    labels: list[int] = []
    for _, ids, trained, _ in pieces:
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    return {"input_ids": input_ids, "labels": labels}


def template_pieces(
    conv: Conversation,
    tokenizer: Any,
    template: str = "chatml",
    train_on_prompt: bool = False,
    last_turn_only: bool = False,
) -> list[Piece]:
    """The pieces of a chat record under a text template (``train_on_prompt`` trains them all)."""
    tpl = get_template(template)
    eos = tokenizer.eos_token or ""
    pieces: list[Piece] = []
    bos = bos_ids(tokenizer)
    if bos:
        pieces.append((tokenizer.bos_token, bos, train_on_prompt, "bos"))
    for message in prepared_messages(conv, last_turn_only):
        for text, is_content, trained in tpl.segments(message, eos):
            ids = encode_piece(tokenizer, text, literal=is_content)
            if ids:
                pieces.append((text, ids, trained or train_on_prompt, message.role))
    return pieces
