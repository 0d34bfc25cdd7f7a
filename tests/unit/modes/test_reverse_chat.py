"""reverse-chat: the user turns become the targets, built from ShareGPT."""

from __future__ import annotations

from pathlib import Path

from tuneforge.data import render_prompt
from tuneforge.modes import get_mode
from tuneforge.modes.reverse_chat import PROMPTS as RC
from tuneforge.modes.reverse_chat import ReverseChatExample

from .helpers import build, jsonl, turns


def test_reverse_chat_makes_the_user_turns_the_targets() -> None:
    ex = ReverseChatExample((("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Ciao")))
    conv = get_mode("reverse-chat").compile(ex)
    assert turns(conv) == [
        ("system", RC["system"]), ("user", RC["start"]),
        ("assistant", "Hi"), ("user", "Hello!"), ("assistant", "Bye"),
    ]  # fmt: skip
    assert render_prompt(conv).endswith("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n")


def test_reverse_chat_from_sharegpt(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    src = jsonl(tmp_path / "c.jsonl", [{"conversations": conv}])
    (rev,), _ = build("reverse-chat", [src])
    assert [m.content for m in get_mode("reverse-chat").compile(rev).messages][1:] == [
        "(start the conversation)",
        "Hi",
    ]
