"""The one IR -> OpenAI chat writer: tool calls kept, and reading its output back gives the same IR."""

from __future__ import annotations

import json

from tuneforge.data import Conversation, Message
from tuneforge.data.holdout import holdout_record
from tuneforge.data.openai_format import to_openai
from tuneforge.data.readers import RecordStream
from tuneforge.modes import to_openai as modes_to_openai

TOOLS = ({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},)
CALLS = (
    {"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo", "days": [1, 2], "deg": 1.5}},
    {"id": None, "name": "note", "arguments": "free text, not JSON"},
    {"id": "c3", "name": "echo", "arguments": '"a JSON-looking string"'},  # a string that parses as JSON
    {"id": "c4", "name": "count", "arguments": 3},
)


def _tool_conversation() -> Conversation:
    return Conversation(
        (
            Message("system", "You may call tools."),
            Message("user", "Weather in Oslo? Ünïcode too."),
            Message("assistant", "", tool_calls=CALLS),
            Message("tool", "3 C", name="get_weather"),
            Message("tool", "noted", name="note"),
            Message("assistant", "It is 3 C.", train=False),
            Message("user", "thanks"),
            Message("assistant", "welcome"),
        ),
        tools=TOOLS,
    )


def _read_back(records: list[dict]) -> list[Conversation]:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    return list(RecordStream(data, "written.jsonl", "openai"))


def test_round_trip_ir_openai_ir_keeps_tool_calls() -> None:
    conv = _tool_conversation()
    record = to_openai(conv)
    call = record["messages"][2]["tool_calls"][0]
    assert call == {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(CALLS[0]["arguments"])},
    }  # fmt: skip  (OpenAI's wire form)
    assert "id" not in record["messages"][2]["tool_calls"][1]
    assert record["messages"][3]["name"] == "get_weather" and record["tools"] == list(TOOLS)
    assert record["messages"][5]["weight"] == 0
    (back,) = _read_back([record])
    assert back.messages == conv.messages
    assert back.tools == conv.tools and back.content_hash() == conv.content_hash()
    assert to_openai(back) == record  # and writing the read record again is a fixed point


def test_plain_chat_and_pretrain_records() -> None:
    chat = Conversation((Message("user", "q"), Message("assistant", "a")))
    assert to_openai(chat) == {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    }
    (back,) = _read_back([to_openai(chat)])
    assert back.messages == chat.messages and back.tools is None
    raw = Conversation((Message("assistant", "raw words", train=True),), mode="pretrain")
    assert to_openai(raw) == {"text": "raw words"}


def test_mode_builds_and_the_holdout_share_the_writer() -> None:
    conv = _tool_conversation()
    assert modes_to_openai is to_openai  # modes/base.py re-exports it (it used to drop tool calls)
    assert holdout_record(conv) == to_openai(conv)  # the held-out split keeps them the same way
    assert holdout_record(Conversation((Message("user", "no answer"),))) is None
