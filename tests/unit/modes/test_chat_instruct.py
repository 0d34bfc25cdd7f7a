"""chat+instruct: a chat that switches to an instruction at the marker, mixed at a ratio."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.chat import ChatExample
from tuneforge.modes.chat_instruct import PROMPTS as CI
from tuneforge.modes.chat_instruct import ChatInstructExample, is_instruct_part
from tuneforge.modes.instruct import InstructExample

from .helpers import build, jsonl, turns


def test_chat_instruct_switches_with_the_seed_004_marker() -> None:
    chat = ChatExample((("user", "Do you like movies?"), ("assistant", "Yes, I do.")))
    conv = get_mode("chat+instruct").compile(
        ChatInstructExample(chat, InstructExample("Summarize X.", "X is..."))
    )
    assert turns(conv)[1:] == [
        ("user", "Do you like movies?"), ("assistant", "Yes, I do."), ("user", "### Instruction"),
        ("assistant", CI["ack"]), ("user", "Summarize X."), ("assistant", "X is..."),
    ]  # fmt: skip
    assert is_instruct_part(conv)
    assert not is_instruct_part(get_mode("chat+instruct").compile(ChatInstructExample(chat)))


def test_chat_instruct_mixes_at_the_ratio(tmp_path: Path) -> None:
    turns = [{"role": r, "content": f"{r} {i}"} for i in range(2) for r in ("user", "assistant")]
    chats = jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": turns
                + [{"role": "user", "content": f"q{k}"}, {"role": "assistant", "content": "a"}]
            }
            for k in range(200)
        ],
    )
    instr = jsonl(tmp_path / "i.jsonl", [{"instruction": f"Do {k}", "output": "done"} for k in range(10)])
    items, opts = build("chat+instruct", [chats, instr], ratio="0.25")
    switched = sum(x.instruction is not None for x in items)
    assert len(items) == 200 and 30 <= switched <= 70 and opts.counts["switched"] == switched
