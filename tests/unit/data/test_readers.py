"""Readers, the chat IR, the content-hash split and the bundled demo data."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
from pathlib import Path

import pytest

from tuneforge.data import (
    Conversation,
    DataError,
    Message,
    detect_format,
    read_conversations,
    record_to_ir,
)
from tuneforge.data.files import iter_items, read_bytes
from tuneforge.data.split import is_eval_hash

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "data"
ASSETS = REPO / "platform" / "tuneforge" / "assets" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


def _read(name: str, fmt: str = "auto") -> list[Conversation]:
    return list(read_conversations(FIXTURES / name, fmt))


# ------------------------------------------------------------------------------------------ good files


def test_openai_jsonl_parses_into_ir() -> None:
    path = str(FIXTURES / "chat_good.jsonl")
    assert _read("chat_good.jsonl") == [
        Conversation(
            messages=(
                Message("system", "Be brief."),
                Message("user", "What is 2 plus 2?"),
                Message("assistant", "4"),
            ),
            source=path,
            line=1,
            mode="chat",
        ),
        # Line 3: the blank line 2 is skipped but still counted; text parts are joined.
        Conversation(
            messages=(
                Message("user", "Spell 'cat' backwards."),
                Message("assistant", "tac", train=False),
                Message("user", "And 'dog'?"),
                Message("assistant", "god", train=True),
            ),
            source=path,
            line=3,
            mode="chat",
        ),
    ]


def test_weight_maps_to_train_flag_and_default_follows_role() -> None:
    conv = _read("chat_good.jsonl")[1]
    assert [m.train for m in conv.messages] == [None, False, None, True]
    assert [m.trained for m in conv.messages] == [False, False, False, True]
    assert [m.trained for m in _read("chat_good.jsonl")[0].messages] == [False, False, True]


def test_alpaca_json_array_parses_with_element_start_lines() -> None:
    path = str(FIXTURES / "alpaca_good.json")
    assert _read("alpaca_good.json") == [
        Conversation(
            (Message("user", "Reverse the word.\n\nriver"), Message("assistant", "revir")),
            path,
            2,
            "instruct",
        ),
        Conversation(
            (Message("user", "Name the capital of France."), Message("assistant", "Paris")),
            path,
            7,
            "instruct",
        ),
        Conversation(
            (
                Message("system", "You are terse."),
                Message("user", "Add the two numbers.\n\n3 and 4"),
                Message("assistant", "7"),
            ),
            path,
            9,
            "instruct",
        ),
    ]


def test_alpaca_jsonl_matches_the_array_form() -> None:
    jsonl = _read("alpaca_good.jsonl")
    array = _read("alpaca_good.json")
    assert [c.messages for c in jsonl] == [c.messages for c in array[:2]]
    assert [c.line for c in jsonl] == [1, 2]


def test_empty_json_array_and_blank_jsonl_have_no_records(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(" [ \n ] \n")
    (tmp_path / "b.jsonl").write_text("\n  \n")
    for name in ("a.json", "b.jsonl"):
        path = str(tmp_path / name)
        assert list(iter_items(read_bytes(path), path)) == []


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        ({"messages": []}, "openai"),
        ({"instruction": "x", "output": "y"}, "alpaca"),
        ({"instruction": "x"}, "alpaca"),  # so that the missing output is reported by name
        ({"conversations": []}, "sharegpt"),
        ({"text": "x"}, "text"),
    ],
)
def test_detect_format(record: dict, fmt: str) -> None:
    assert detect_format(record) == fmt


def test_detect_format_unknown_lists_formats_and_keys() -> None:
    with pytest.raises(DataError) as info:
        detect_format({"prompt": "a", "completion": "b"}, source="f.jsonl", line=4)
    text = str(info.value)
    assert text.startswith("f.jsonl:4: cannot tell the record's format from its keys (completion, prompt)")
    for name in ("openai", "alpaca", "sharegpt", "text"):
        assert name in text


# ------------------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    ("name", "line", "field", "message"),
    [
        (
            "bad_role.jsonl",
            2,
            "messages[2].role",
            "unknown role 'asistant'; expected one of assistant, system, tool, user",
        ),
        ("bad_missing_output.json", 3, "output", "missing required field"),
        (
            "bad_no_assistant.jsonl",
            1,
            "messages",
            "no assistant message; a training record needs at least one",
        ),
        (
            "bad_content_type.jsonl",
            1,
            "messages[1].content",
            "must be a string or an array of text parts, got number",
        ),
        (
            "bad_mixed.jsonl",
            2,
            "",
            "record is in 'alpaca' format but the file's first record is 'openai'; "
            "one file must hold one format",
        ),
        (
            "bad_tool_calls.jsonl",
            1,
            "messages[1].tool_calls[0].function.name",
            "a tool call needs a function name",
        ),
        ("bad_not_object.jsonl", 1, "", "a record must be a JSON object, got array"),
    ],
)
def test_bad_records_name_file_line_and_field(name: str, line: int, field: str, message: str) -> None:
    path = str(FIXTURES / name)
    with pytest.raises(DataError) as info:
        _read(name)
    err = info.value
    assert (err.file, err.line, err.field, err.message) == (path, line, field, message)
    where = f"{path}:{line}" + (f" (record {err.record})" if name.endswith(".json") else "")
    assert str(err) == ": ".join(p for p in (where, field, message) if p)
    assert "\n" not in str(err)


def test_bad_json_names_the_line() -> None:
    path = str(FIXTURES / "bad_json_line3.jsonl")
    with pytest.raises(DataError) as info:
        _read("bad_json_line3.jsonl")
    assert str(info.value).startswith(f"{path}:3: invalid JSON: ")


def test_bad_json_inside_an_array_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a" "output": "b"}\n]\n')
    with pytest.raises(DataError) as info:
        list(read_conversations(path))
    assert str(info.value).startswith(f"{path}:3 (record 2): invalid JSON: Expecting ',' delimiter")


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]},
         "messages[1].content", "must be a string or an array of text parts, got null"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]},
         "messages[0].content", "missing required field"),
        ({"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]},
         "messages[0].role", "missing required field"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
                       {"role": "assistant", "content": "b"}]},
         "messages[0].content[0].type",
         "unsupported content part type 'image_url'; only 'text' is supported"),
        ({"messages": [{"role": "user", "content": "a", "weight": 1},
                       {"role": "assistant", "content": "b"}]},
         "messages[0].weight", "only assistant messages take a weight"),
        ({"messages": [{"role": "user", "content": "a"},
                       {"role": "assistant", "content": "b", "weight": 0.5}]},
         "messages[1].weight", "must be 0 or 1, got 0.5"),
        ({"messages": "hello"}, "messages", "must be a non-empty array of messages, got string"),
        ({"messages": []}, "messages", "must be a non-empty array of messages, got an empty array"),
        ({"instruction": "a", "output": ""}, "output", "must not be empty"),
        ({"instruction": "a", "output": "b", "input": 3}, "input", "must be a string, got number"),
    ],
)  # fmt: skip
def test_invalid_fields(record: dict, field: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        record_to_ir(record, detect_format(record), "x.jsonl", 5)
    assert str(info.value) == f"x.jsonl:5: {field}: {message}"


def test_unknown_format_name_is_a_programming_error() -> None:
    # sharegpt and text used to be "recognised but unsupported"; every detected format now converts.
    with pytest.raises(ValueError, match=r"unknown format 'csv'"):
        record_to_ir({"conversations": []}, "csv", "x.json", 2)


def test_explicit_format_checks_that_format(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        _read("chat_good.jsonl", fmt="alpaca")
    assert (info.value.line, info.value.field) == (1, "instruction")
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        read_conversations(FIXTURES / "chat_good.jsonl", fmt="csv")


def test_file_shape_errors(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "obj.json").write_text('{"messages": []}')
    (tmp_path / "latin1.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(
        DataError, match=r"data\.csv: unsupported file extension '\.csv'; expected \.jsonl or \.json"
    ):
        list(read_conversations(tmp_path / "data.csv"))
    with pytest.raises(DataError, match=r"obj\.json:1: expected a JSON array of records"):
        list(read_conversations(tmp_path / "obj.json"))
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        list(read_conversations(tmp_path / "latin1.jsonl"))


def test_data_error_survives_pickling() -> None:
    err = DataError("unknown role 'x'", "f.jsonl", 3, "messages[0].role")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.line, copy.field, copy.message, str(copy)) == (
        err.file, err.line, err.field, err.message, str(err),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ IR and split


def test_ir_round_trips_through_json() -> None:
    for conv in _read("chat_good.jsonl") + _read("alpaca_good.json"):
        assert Conversation.from_dict(json.loads(json.dumps(conv.to_dict()))) == conv


def test_message_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="unknown role 'bot'"):
        Message("bot", "hi")


def test_content_hash_is_stable_and_ignores_location_and_weights() -> None:
    conv = Conversation((Message("user", "What is 2 plus 2?"), Message("assistant", "4")), "a.jsonl", 1)
    # The canonical form is spelled out, so the hash cannot drift across runs, processes or versions.
    canonical = b'[["user","What is 2 plus 2?"],["assistant","4"]]'
    assert conv.content_hash() == hashlib.sha256(canonical).hexdigest()
    moved = Conversation(
        (Message("user", "What is 2 plus 2?"), Message("assistant", "4", False)), "b.json", 9
    )
    assert moved.content_hash() == conv.content_hash()
    changed = Conversation((Message("user", "What is 2 plus 2?"), Message("assistant", "5")))
    assert changed.content_hash() != conv.content_hash()


def _bundled_chat() -> list[Conversation]:
    return list(read_conversations(ASSETS / "tiny_chat.jsonl"))


def is_eval(conv: Conversation, eval_fraction: float, seed: int) -> bool:
    return is_eval_hash(conv.content_hash(), eval_fraction, seed)


def test_is_eval_is_deterministic_order_free_and_near_the_fraction() -> None:
    convs = _bundled_chat()
    chosen = {c.content_hash() for c in convs if is_eval(c, 0.2, seed=7)}
    reversed_choice = {c.content_hash() for c in reversed(convs) if is_eval(c, 0.2, seed=7)}
    assert chosen == reversed_choice
    assert 0.15 * len(convs) < len(chosen) < 0.25 * len(convs)
    assert chosen != {c.content_hash() for c in convs if is_eval(c, 0.2, seed=8)}
    assert not any(is_eval(c, 0.0, seed=7) for c in convs)
    assert all(is_eval(c, 1.0, seed=7) for c in convs)
    with pytest.raises(ValueError, match="eval_fraction"):
        is_eval(convs[0], 1.5, seed=7)


# ------------------------------------------------------------------------------------------ bundled data


def test_bundled_data_parses_and_is_ascii() -> None:
    chat = _bundled_chat()
    alpaca = list(read_conversations(ASSETS / "tiny_alpaca.jsonl"))
    assert (len(chat), len(alpaca)) == (600, 400)
    assert {c.mode for c in chat} == {"chat"} and {c.mode for c in alpaca} == {"instruct"}
    assert any(len([m for m in c.messages if m.role == "user"]) == 2 for c in chat)
    assert any(c.messages[0].role == "system" for c in chat)
    for name in ("tiny_chat.jsonl", "tiny_alpaca.jsonl"):
        (ASSETS / name).read_bytes().decode("ascii")


def test_bundled_data_is_exactly_the_generator_output() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_tiny_data", REPO / "jobs" / "tools" / "make_tiny_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.generate().items():
        assert (ASSETS / name).read_text(encoding="ascii") == text, f"{name} is stale; rerun the generator"


# ------------------------------------------------------------------------------------------ shared real data

needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not present on this machine"
)


@needs_shared
@pytest.mark.parametrize(
    ("relpath", "count", "fmt"),
    [
        ("openai-cookbook/toy_chat_fine_tuning.jsonl", 5, "chat"),
        ("llamafactory/alpaca_en_demo.json", 999, "instruct"),
        ("llamafactory/identity.json", 91, "instruct"),
    ],
)
def test_real_public_files_parse(relpath: str, count: int, fmt: str) -> None:
    convs = list(read_conversations(SHARED_DATA / relpath))
    assert len(convs) == count
    assert {c.mode for c in convs} == {fmt}
    assert all(c.messages[-1].role == "assistant" and c.messages[-1].content for c in convs)


@needs_shared
def test_tool_call_records_parse() -> None:
    # Tool calls used to be rejected here; they are now part of the IR (see test_formats.py).
    convs = list(read_conversations(SHARED_DATA / "openai-cookbook" / "drone_training.jsonl"))
    assert len(convs) == 103
    call = convs[0].messages[2].tool_calls
    assert call == ({"id": "call_id", "name": "takeoff_drone", "arguments": {"altitude": 100}},)
