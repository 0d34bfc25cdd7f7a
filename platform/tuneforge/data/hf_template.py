"""The model's own chat template (``tokenizer.chat_template``, Jinja) with exact loss masks.

A Jinja template is a black box, so the trained spans are found by rendering growing prefixes with
``apply_chat_template``: for an assistant message ``i`` the text added by
``render(messages[:i], add_generation_prompt=True)`` is its (untrained) header and the text added by
``render(messages[:i + 1])`` after that is its trained body plus end-of-turn marker. Each piece is
tokenized separately, so the token boundaries coincide with the piece boundaries and the mask is
exact by construction. Trailing whitespace after the end marker (ChatML's ``\\n``) stays untrained.

This needs a prefix-stable template (rendering more messages only appends text). Templates that
rewrite earlier turns (e.g. ones that strip reasoning from all but the last answer) are rejected
with a message that suggests a named template. Markup and content are tokenized together here, so
literal marker text inside content is not protected as it is with the named templates.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.ir import Conversation, Message
from tuneforge.data.templates import Piece, prepared_messages


def _hf_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "type": "function",
                "id": c.get("id"),
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in m.tool_calls
        ]
    if m.name is not None:
        out["name"] = m.name
    return out


def _hf_tools(conv: Conversation) -> list[dict[str, Any]] | None:
    if not conv.tools:
        return None
    return [t if "type" in t else {"type": "function", "function": t} for t in conv.tools]


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, generation: bool) -> str:
    if not messages:
        return ""
    try:
        text: str = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation
        )
    except Exception as exc:  # Jinja raises its own exception types for template-enforced rules
        raise ValueError(f"the tokenizer's chat template failed on this record: {exc}") from exc
    return text


def _not_prefix(i: int) -> ValueError:
    return ValueError(
        f"the tokenizer's chat template is not prefix-stable at message {i} (rendering more messages "
        "changed earlier text), so exact loss masks cannot be derived; use data.template=chatml or a "
        "named template"
    )


def tokenizer_segments(
    conv: Conversation, tokenizer: Any, last_turn_only: bool = False
) -> list[tuple[str, bool, str]]:
    """``(text, trained, role)`` pieces whose concatenation is the template's rendering of the record."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("data.template=tokenizer but the tokenizer has no chat_template")
    messages = prepared_messages(Conversation(conv.messages), last_turn_only)
    hf = [_hf_message(m) for m in messages]
    tools = _hf_tools(conv)
    pieces: list[tuple[str, bool, str]] = []
    prev = ""
    for i, message in enumerate(messages):
        full = _render(tokenizer, hf[: i + 1], tools, generation=False)
        if message.trained:
            prompt = _render(tokenizer, hf[:i], tools, generation=True) if i else ""
            if not prompt.startswith(prev) or not full.startswith(prompt):
                raise _not_prefix(i)
            body = full[len(prompt) :]
            stripped = body.rstrip()
            role = message.role
            pieces += [
                (prompt[len(prev) :], False, role),
                (stripped, True, role),
                (body[len(stripped) :], False, role),
            ]
        else:
            if not full.startswith(prev):
                raise _not_prefix(i)
            pieces.append((full[len(prev) :], False, message.role))
        prev = full
    return [piece for piece in pieces if piece[0]]


def tokenizer_pieces(
    conv: Conversation, tokenizer: Any, train_on_prompt: bool = False, last_turn_only: bool = False
) -> list[Piece]:
    """The pieces of a chat record under the tokenizer's own template, tokenized."""
    pieces: list[Piece] = []
    for text, trained, role in tokenizer_segments(conv, tokenizer, last_turn_only):
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        pieces.append((text, ids, trained or train_on_prompt, role))
    return pieces


def tokenizer_prompt(conv: Conversation, tokenizer: Any) -> str:
    """The generation prompt under the tokenizer's own template: every message but a trailing
    assistant one, then the template's generation header -- exactly the untrained prefix that
    ``tokenizer_segments`` puts before that assistant turn in training."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'tokenizer' but the tokenizer has no chat_template")
    messages = list(prepared_messages(Conversation(conv.messages)))
    if messages and messages[-1].role == "assistant":
        messages = messages[:-1]
    return _render(tokenizer, [_hf_message(m) for m in messages], _hf_tools(conv), generation=True)
