"""The preference IR: one prompt and the replies a preference loss compares (DPO/IPO/ORPO/SimPO, KTO).

Why a separate record type rather than two ``Conversation`` objects: the losses compare the two
replies *to the same prompt*, so the prompt is stored once and both sides are rendered from it
(``data/preference/encode.py`` checks that their prompt tokens come out identical). Unpaired (KTO)
data has one reply and a desirable/undesirable label; it uses the same type so that readers, dedup,
the split and the Ray rows are written once.

Shapes (checked in ``__post_init__``, so a malformed record cannot be built by mistake):

* paired: ``chosen`` and ``rejected`` are assistant messages, ``label`` is None;
* unpaired: ``chosen`` is the one reply, ``rejected`` is None, ``label`` is True (desirable) or
  False (undesirable).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from tuneforge.data.ir import Conversation, Message

PAIRED = "paired"
UNPAIRED = "unpaired"
#: roles a prompt may end on: the reply answers a user turn (or a tool result it was waiting for)
PROMPT_END_ROLES: tuple[str, ...] = ("user", "tool")


@dataclass(frozen=True)
class PreferenceRecord:
    """A prompt (ending on a user turn) and its assistant reply or replies, with where it came from."""

    prompt: tuple[Message, ...]
    chosen: Message | None
    rejected: Message | None = None
    label: bool | None = None
    source: str = ""
    line: int = 0
    tools: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, tuple):
            object.__setattr__(self, "prompt", tuple(self.prompt))
        if not self.prompt or self.prompt[-1].role not in PROMPT_END_ROLES:
            raise ValueError("a preference prompt must end on a user turn")
        if self.chosen is None:
            raise ValueError("a preference record needs a chosen (or, unpaired, the only) reply")
        for reply in (self.chosen, self.rejected):
            if reply is not None and reply.role != "assistant":
                raise ValueError(f"a reply must be an assistant message, got {reply.role!r}")
        if self.rejected is not None and self.label is not None:
            raise ValueError("a paired record carries no label (the pair is the label)")
        if self.rejected is None and self.label is None:
            raise ValueError("an unpaired record needs a label (True = desirable, False = undesirable)")

    @property
    def kind(self) -> str:
        """``paired`` (chosen + rejected: DPO, IPO, ORPO, SimPO) or ``unpaired`` (one reply + label: KTO)."""
        return PAIRED if self.rejected is not None else UNPAIRED

    @property
    def replies(self) -> tuple[Message, ...]:
        """The reply or replies, chosen first."""
        assert self.chosen is not None  # __post_init__
        return (self.chosen,) if self.rejected is None else (self.chosen, self.rejected)

    def conversation(self, reply: Message) -> Conversation:
        """``prompt + (reply,)`` as a chat record in which only the reply is trained.

        Earlier assistant turns of the prompt are context, not targets: a preference loss scores
        the reply alone, so every prompt message is marked untrained.
        """
        prompt = tuple(replace(m, train=False) if m.trained else m for m in self.prompt)
        return Conversation(
            (*prompt, replace(reply, train=True)), source=self.source, line=self.line, tools=self.tools
        )

    def content_hash(self) -> str:
        """sha256 hex of the canonical prompt, replies, label and offered tools, stable across runs.

        Like ``Conversation.content_hash``: source, line and train flags are left out, so the same
        pair read from two files is one record for dedup and lands on one side of the split. The
        kind and label are in: a desirable and an undesirable copy of one reply are different data.
        """
        body: dict[str, Any] = {
            "prompt": [_turn(m) for m in self.prompt],
            "replies": [_turn(m) for m in self.replies],
            "label": self.label,
        }
        if self.tools is not None:
            body["tools"] = list(self.tools)
        canonical = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _turn(m: Message) -> list[Any]:
    return [m.role, m.content] if m.tool_calls is None else [m.role, m.content, list(m.tool_calls)]


def unpair(record: PreferenceRecord) -> list[PreferenceRecord]:
    """A paired record as two unpaired ones (chosen desirable, rejected undesirable), for KTO.

    KTO needs only a per-reply label, so paired data trains it too (the usual conversion); an
    unpaired record is returned as it is.
    """
    if record.rejected is None:
        return [record]
    return [
        replace(record, rejected=None, label=True),
        replace(record, chosen=record.rejected, rejected=None, label=False),
    ]
