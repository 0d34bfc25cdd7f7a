"""chat: turns kept as they are, with the record's own system prompt, built from ShareGPT."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.chat import ChatExample

from .helpers import build, jsonl, turns


def test_chat_keeps_turns_and_own_system_prompt() -> None:
    ex = ChatExample(
        (("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Bye!")), "Be kind."
    )
    assert turns(get_mode("chat").compile(ex)) == [("system", "Be kind."), *ex.turns]
    assert turns(get_mode("chat").compile(ChatExample(ex.turns)))[0] == ("user", "Hi")


def test_chat_from_sharegpt(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    src = jsonl(tmp_path / "c.jsonl", [{"conversations": conv}])
    (chat,), _ = build("chat", [src])
    assert chat.turns == (("user", "Hi"), ("assistant", "Hello"))
