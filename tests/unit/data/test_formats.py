"""Every input format compiles to the same IR: OpenAI (tool calls, weights, tools), Alpaca (system,
history), ShareGPT (function_call/observation, tools, renamed tags), raw text, dataset_info.json
dataset catalogs, JSON/JSONL/Parquet/txt files, and fsspec URLs."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneforge.data import Conversation, DataError, Message, read_conversations, read_source
from tuneforge.data.readers import RecordStream

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present on this machine")


def _jsonl(tmp_path: Path, name: str, records: list) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


TOOL_RECORD = {
    "messages": [
        {"role": "system", "content": "You fly drones."},
        {"role": "user", "content": "Take off to 100m."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "takeoff", "arguments": "{\"altitude\": 100}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\": true}"},
        {"role": "assistant", "content": "Airborne.", "weight": 0},
        {"role": "user", "content": "Land."},
        {"role": "assistant", "content": "Landing.", "weight": 1},
    ],
    "tools": [{"type": "function", "function": {"name": "takeoff", "parameters": {"type": "object"}}}],
}  # fmt: skip


def test_openai_tool_calls_weights_and_tools(tmp_path: Path) -> None:
    [conv] = read_conversations(_jsonl(tmp_path, "t.jsonl", [TOOL_RECORD]))
    m = conv.messages
    assert m[2] == Message(
        "assistant", "", None, ({"id": "c1", "name": "takeoff", "arguments": {"altitude": 100}},)
    )
    assert (m[3].role, m[3].name, m[3].content) == ("tool", "c1", '{"ok": true}')
    assert [x.trained for x in m] == [False, False, True, False, False, False, True]
    assert conv.tools == tuple(TOOL_RECORD["tools"])


def test_ir_round_trips_with_tool_calls_and_tools(tmp_path: Path) -> None:
    [conv] = read_conversations(_jsonl(tmp_path, "t.jsonl", [TOOL_RECORD]))
    conv = Conversation(conv.messages, conv.source, conv.line, conv.mode, conv.tools, {"id": "x"})
    again = Conversation.from_dict(json.loads(json.dumps(conv.to_dict())))
    assert again == conv
    assert again.content_hash() == conv.content_hash()
    no_tools = Conversation(conv.messages)
    assert no_tools.content_hash() != conv.content_hash()  # the offered tools are part of the text


def test_alpaca_system_and_history(tmp_path: Path) -> None:
    rec = {"instruction": "And 3+3?", "input": "", "output": "6", "system": "Be terse.",
           "history": [["1+1?", "2"], ["2+2?", "4"]]}  # fmt: skip
    [conv] = read_conversations(_jsonl(tmp_path, "a.jsonl", [rec]))
    assert [(m.role, m.content) for m in conv.messages] == [
        ("system", "Be terse."), ("user", "1+1?"), ("assistant", "2"), ("user", "2+2?"), ("assistant", "4"),
        ("user", "And 3+3?"), ("assistant", "6"),
    ]  # fmt: skip
    assert conv.mode == "instruct"
    with pytest.raises(DataError, match=r"history\[0\]: must be a \[user, assistant\] pair"):
        read_conversations(_jsonl(tmp_path, "b.jsonl", [{**rec, "history": [["only one"]]}])).__next__()


def test_sharegpt_roles_function_calls_and_tools(tmp_path: Path) -> None:
    rec = {
        "conversations": [
            {"from": "system", "value": "sys"},
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "3 degrees."},
        ],
        "tools": '[{"name": "get_weather", "parameters": {}}]',
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps([rec], indent=1))
    [conv] = read_conversations(path)
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[2].tool_calls == (
        {"id": None, "name": "get_weather", "arguments": {"city": "Oslo"}},
    )
    assert conv.tools == ({"name": "get_weather", "parameters": {}},)
    bad = {"conversations": [{"from": "human", "value": "x"}, {"from": "bot", "value": "y"}]}
    with pytest.raises(
        DataError, match=r"conversations\[1\]\.from: unknown role 'bot'; expected one of human"
    ):
        list(read_conversations(_jsonl(tmp_path, "b.jsonl", [bad])))


def test_raw_text_jsonl_and_txt(tmp_path: Path) -> None:
    [a, b] = read_conversations(_jsonl(tmp_path, "c.jsonl", [{"text": "one doc"}, {"text": "two"}]))
    assert (a.mode, a.text, a.messages[0].trained) == ("pretrain", "one doc", True)
    txt = tmp_path / "w.txt"
    txt.write_text("first article\n\nsecond article\n")
    convs = list(read_conversations(txt))
    assert [(c.line, c.text) for c in convs] == [(1, "first article"), (3, "second article")]


def test_parquet_reads_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b"], "output": ["x", "y"]}), path)
    convs = list(read_conversations(path))
    assert [(c.line, c.messages[-1].content) for c in convs] == [(1, "x"), (2, "y")]


def test_fsspec_memory_url_reads_like_a_local_file(tmp_path: Path) -> None:
    local = REPO / "platform" / "tuneforge" / "assets" / "data" / "tiny_chat.jsonl"
    url = "memory://tuneforge-test/chat.jsonl"
    with fsspec.open(url, "wb") as handle:
        handle.write(local.read_bytes())
    remote, here = read_source(url), read_source(local)
    assert [c.messages for c in remote.conversations] == [c.messages for c in here.conversations]
    assert remote.sha256 == here.sha256 and remote.format == "openai"


def test_catalog_with_columns_and_tags(tmp_path: Path) -> None:
    _jsonl(
        tmp_path,
        "chat.jsonl",
        [
            {
                "dialog": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "sys": "S",
            }
        ],
    )
    _jsonl(tmp_path, "qa.jsonl", [{"q": "2+2?", "a": "4"}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt",
                 "columns": {"messages": "dialog", "system": "sys"},
                 "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                          "assistant_tag": "assistant"}},
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}},
        "hub": {"hf_hub_url": "someone/data"},
        "pref": {"file_name": "qa.jsonl", "ranking": True},
    }))  # fmt: skip
    catalog = str(tmp_path / "dataset_info.json")
    chat = read_source(catalog, name="chat")
    assert [(m.role, m.content) for m in chat.conversations[0].messages] == [
        ("system", "S"),
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    assert chat.source == f"{catalog}#chat" and chat.format == "sharegpt"
    qa = read_source(f"{catalog}#qa")  # the path#name form is the same thing
    assert [(m.role, m.content) for m in qa.conversations[0].messages] == [
        ("user", "2+2?"),
        ("assistant", "4"),
    ]
    with pytest.raises(DataError, match="no local file_name"):
        read_source(catalog, name="hub")
    with pytest.raises(DataError, match="preference and multimodal"):
        read_source(catalog, name="pref")
    with pytest.raises(DataError, match="is a dataset catalog; name an entry"):
        read_source(catalog)
    with pytest.raises(DataError, match="no dataset 'nope' in the catalog; local entries: chat, pref, qa"):
        read_source(catalog, name="nope")


@needs_shared
@pytest.mark.parametrize(
    ("ref", "fmt", "count", "mode"),
    [
        ("llamafactory/glaive_toolcall_en_demo.json", "sharegpt", 300, "chat"),
        ("fastchat/dummy_conversation.json", "sharegpt", 500, "chat"),
        ("openai-cookbook/drone_training.jsonl", "openai", 103, "chat"),
        ("llamafactory/dataset_info.json#identity", "alpaca", 91, "instruct"),
        ("llamafactory/dataset_info.json#alpaca_en_demo", "alpaca", 999, "instruct"),
        ("llamafactory/dataset_info.json#glaive_toolcall_en_demo", "sharegpt", 300, "chat"),
        ("llamafactory/dataset_info.json#c4_demo", "text", 300, "pretrain"),
        ("llamafactory/c4_demo.jsonl", "text", 300, "pretrain"),
        ("llamafactory/wiki_demo.txt", "text", 30, "pretrain"),
        ("tinyshakespeare/input.txt", "text", 32777, "pretrain"),
    ],
)
def test_real_public_files(ref: str, fmt: str, count: int, mode: str) -> None:
    parsed = read_source(str(SHARED / ref))
    assert (parsed.format, len(parsed.conversations)) == (fmt, count)
    assert {c.mode for c in parsed.conversations} == {mode}
    assert len(parsed.sha256) == 64


@needs_shared
def test_real_tool_call_data_has_calls_results_and_tools() -> None:
    glaive = read_source(str(SHARED / "llamafactory/glaive_toolcall_en_demo.json")).conversations
    with_calls = [c for c in glaive if any(m.tool_calls for m in c.messages)]
    assert with_calls and all(c.tools for c in with_calls)
    assert any(m.role == "tool" for c in with_calls for m in c.messages)
    drone = read_source(str(SHARED / "openai-cookbook/drone_training.jsonl")).conversations
    assert all(c.tools for c in drone) and all(c.messages[-1].tool_calls for c in drone[:5])


def test_record_stream_equals_reading_the_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, "t.jsonl", [TOOL_RECORD, TOOL_RECORD])
    assert list(RecordStream(path.read_bytes(), str(path))) == list(read_conversations(path))


def test_record_id_is_kept_as_metadata(tmp_path: Path) -> None:
    rec = {
        "id": "identity_0",
        "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}],
    }
    [conv] = read_conversations(_jsonl(tmp_path, "i.jsonl", [rec]))
    assert conv.metadata == {"id": "identity_0"}
    assert conv.content_hash() == Conversation(conv.messages).content_hash()  # metadata is not content
