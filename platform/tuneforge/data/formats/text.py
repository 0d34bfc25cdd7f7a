"""Raw text for continued pretraining: ``{"text": ...}`` records or lines of a ``.txt`` file.

The IR is ``mode="pretrain"`` with one message (role assistant, ``train=True``) holding the text;
the encoder renders it without any chat markup and trains every token (see ``templates``).
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.formats.common import FormatSpec, required_str
from tuneforge.data.ir import Conversation, Message


def text_to_ir(record: dict[str, Any], spec: FormatSpec, source: str, line: int) -> Conversation:
    text = required_str(record, spec.col("text"), source, line)
    return Conversation(
        messages=(Message("assistant", text, train=True),), source=source, line=line, mode="pretrain"
    )
