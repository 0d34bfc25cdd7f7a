"""Preference readers: every format, auto-detection, every error kind with its exact message, the skip
policy, the IR's invariants, hashing/dedup/split, Arrow rows, and the real files in /work/shared/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneforge.data import DataError, Message
from tuneforge.data.plan import side_of
from tuneforge.data.preference import (
    PREFERENCE_FORMAT_NAMES,
    PREFERENCE_ROW_COLUMNS,
    PreferenceRecord,
    dedup_records,
    detect_preference_format,
    is_preference_file,
    read_preference_file,
    record_to_row,
    row_to_record,
    rows_to_records,
    split_records,
    unpair,
)

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "tests" / "fixtures" / "data" / "preference"
ASSETS = REPO / "platform" / "tuneforge" / "assets" / "data"
SHARED = REPO.parent / "shared" / "data"
U = {"role": "user", "content": "Q?"}


def _a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _jsonl(tmp_path: Path, *records: Any, name: str = "d.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _error(path: str, fmt: str = "auto") -> DataError:
    with pytest.raises(DataError) as info:
        read_preference_file(path, fmt=fmt)
    return info.value


# ------------------------------------------------------------------------------------------ formats

FIXTURE_FORMATS = [
    ("sharegpt_dpo.json", "sharegpt_dpo", {"paired": 2, "unpaired": 0}),
    ("sharegpt_kto.json", "sharegpt_kto", {"paired": 0, "unpaired": 2}),
    ("alpaca_dpo.jsonl", "alpaca_dpo", {"paired": 2, "unpaired": 0}),
    ("openai_preference.jsonl", "openai_preference", {"paired": 2, "unpaired": 0}),
    ("stack_exchange.json", "stack_exchange", {"paired": 2, "unpaired": 0}),
    ("hh.jsonl", "hh", {"paired": 2, "unpaired": 0}),
    ("trl_implicit.jsonl", "trl_implicit", {"paired": 2, "unpaired": 0}),
    ("trl_explicit.jsonl", "trl_explicit", {"paired": 2, "unpaired": 0}),
    ("trl_unpaired.jsonl", "trl_unpaired", {"paired": 0, "unpaired": 2}),
]


def test_every_format_has_a_fixture() -> None:
    assert sorted(f for _, f, _ in FIXTURE_FORMATS) == sorted(PREFERENCE_FORMAT_NAMES)


@pytest.mark.parametrize(("name", "fmt", "counts"), FIXTURE_FORMATS)
def test_fixture_is_detected_and_read(name: str, fmt: str, counts: dict[str, int]) -> None:
    path = FIXTURES / name
    assert is_preference_file(path)
    parsed = read_preference_file(path)
    assert (parsed.format, parsed.counts, parsed.problems.total) == (fmt, counts, 0)
    assert read_preference_file(path, fmt=fmt).records == parsed.records  # the explicit format agrees
    for rec in parsed.records:
        assert rec.prompt[-1].role == "user" and rec.source == str(path)
        assert all(r.role == "assistant" and r.content.strip() for r in rec.replies)


def _msgs(*turns: tuple[str, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in turns)


def test_sharegpt_pairs_keep_system_and_history_and_line_numbers() -> None:
    path = str(FIXTURES / "sharegpt_dpo.json")
    first, second = read_preference_file(path).records
    assert first == PreferenceRecord(
        _msgs(("user", "Name a primary colour.")), Message("assistant", "Red."),
        Message("assistant", "Purple."), source=path, line=2,
    )  # fmt: skip
    assert second == PreferenceRecord(
        _msgs(("system", "You are terse."), ("user", "2+2?"), ("assistant", "4"), ("user", "And 3+3?")),
        Message("assistant", "6"), Message("assistant", "Seven, probably."), source=path, line=9,
    )  # fmt: skip
    assert first.kind == "paired" and first.label is None


def test_kto_records_split_the_last_assistant_turn_off_as_the_labelled_reply() -> None:
    path = str(FIXTURES / "sharegpt_kto.json")
    good, bad = read_preference_file(path).records
    assert good == PreferenceRecord(
        _msgs(("user", "Capital of France?")), Message("assistant", "Paris."), None, True, path, 2
    )
    assert bad.prompt == _msgs(
        ("user", "Capital of Spain?"), ("assistant", "Madrid."), ("user", "Capital of Italy?")
    )
    assert (bad.chosen, bad.rejected, bad.label, bad.kind) == (
        Message("assistant", "Lisbon."),
        None,
        False,
        "unpaired",
    )


def test_sharegpt_kto_with_from_value_turns_and_kto_tag(tmp_path: Path) -> None:
    rec = {
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
        "kto_tag": False,
    }
    (only,) = read_preference_file(_jsonl(tmp_path, rec)).records
    assert (only.prompt, only.chosen, only.label) == (
        _msgs(("user", "hi")),
        Message("assistant", "yo"),
        False,
    )


def test_hh_transcripts_share_the_prompt_turns() -> None:
    records = read_preference_file(FIXTURES / "hh.jsonl").records
    assert records[1].prompt == _msgs(
        ("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a fact.")
    )
    assert (records[1].chosen.content, records[1].rejected.content) == ("Octopuses have three hearts.", "No.")  # type: ignore[union-attr]


def test_openai_preference_keeps_tools_and_joins_text_parts() -> None:
    records = read_preference_file(FIXTURES / "openai_preference.jsonl").records
    assert records[0].prompt == _msgs(("system", "Answer briefly."), ("user", "Is water wet?"))
    assert records[1].line == 3  # the blank line 2 is skipped but counted
    assert records[1].prompt == _msgs(("user", "Weather in Oslo?"))
    assert records[1].tools == (
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    )


def test_trl_explicit_and_unpaired_take_strings_or_message_lists() -> None:
    standard, conversational = read_preference_file(FIXTURES / "trl_explicit.jsonl").records
    assert (standard.prompt, standard.chosen, standard.rejected) == (
        _msgs(("user", "The sky is")), Message("assistant", " blue."), Message("assistant", " green."),
    )  # fmt: skip
    assert conversational.prompt == _msgs(("user", "What is 1+1?"))
    first, second = read_preference_file(FIXTURES / "trl_unpaired.jsonl").records
    assert (first.label, second.label, second.chosen) == (True, False, Message("assistant", "5"))


def test_alpaca_pairs_read_like_sft_alpaca() -> None:
    first, second = read_preference_file(FIXTURES / "alpaca_dpo.jsonl").records
    assert first.prompt == _msgs(("user", "Translate to French.\n\ncat"))
    assert second.prompt == _msgs(
        ("system", "Be friendly."), ("user", "Hello?"), ("assistant", "Hello."), ("user", "Say hi.")
    )


def test_parquet_rows_are_read_with_row_numbers(tmp_path: Path) -> None:
    rows = [
        {"chosen": [U, _a("A")], "rejected": [U, _a("B")]},
        {"chosen": [U, _a("C")], "rejected": [U, _a("D")]},
    ]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    parsed = read_preference_file(path)
    assert parsed.format == "trl_implicit" and [r.line for r in parsed.records] == [1, 2]
    assert [r.rejected.content for r in parsed.records] == ["B", "D"]  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"messages": [U, _a("x")]}, None),  # SFT openai
        ({"conversations": []}, None),  # SFT sharegpt
        ({"instruction": "i", "output": "o"}, None),  # SFT alpaca
        ({"text": "t"}, None),
        ({"messages": [U, _a("x")], "label": "positive"}, None),  # a class label is not a KTO label
        ({"messages": [U, _a("x")], "label": True}, "sharegpt_kto"),
        ({"conversations": [], "kto_tag": "true"}, "sharegpt_kto"),
        ({"conversations": [], "chosen": {}, "rejected": {}}, "sharegpt_dpo"),
        ({"input": {}, "preferred_output": []}, "openai_preference"),
        ({"question": "q", "response_j": "a"}, "stack_exchange"),
        ({"instruction": "i", "chosen": "a", "rejected": "b"}, "alpaca_dpo"),
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "trl_explicit"),
        ({"prompt": "p", "completion": "a", "label": False}, "trl_unpaired"),
        ({"chosen": "\n\nHuman: a", "rejected": "\n\nHuman: b"}, "hh"),
        ({"chosen": [U], "rejected": [U]}, "trl_implicit"),
        ([1, 2], None),
    ],
)
def test_detect_preference_format(record: Any, expected: str | None) -> None:
    assert detect_preference_format(record) == expected


def test_is_preference_file_tells_sft_files_apart(tmp_path: Path) -> None:
    assert not is_preference_file(ASSETS / "tiny_chat.jsonl")
    assert not is_preference_file(ASSETS / "tiny_alpaca.jsonl")
    assert not is_preference_file(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert not is_preference_file(empty)
    first_bad = tmp_path / "first_bad.jsonl"
    first_bad.write_text('{oops\n{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    assert is_preference_file(first_bad)  # the first *readable* record decides, as for SFT files


# ------------------------------------------------------------------------------------------ errors

EMPTY = "empty reply: a preference pair needs two non-empty replies"
NOT_USER = "the prompt must end on a user turn (the replies answer it), got 'assistant'"
MISMATCH = "chosen and rejected must share all turns but the last (the prompt); they differ at turn 0"
SAME = "same text as the chosen reply (chosen); a preference pair needs two different replies"
BAD = str(FIXTURES / "bad_pairs.jsonl")
BAD_ERRORS = [
    (2, "non_preferred_output", "identical_replies",
     "same text as the chosen reply (preferred_output); a preference pair needs two different replies"),
    (3, "non_preferred_output[0].content", "empty_reply", EMPTY),
    (4, "input.messages", "prompt_not_user",
     NOT_USER),
    (5, "non_preferred_output", "schema", "missing required field"),
    (6, "preferred_output", "schema", "must be an array holding one assistant message, got string"),
]  # fmt: skip


def test_first_bad_record_raises_with_file_line_and_field() -> None:
    err = _error(BAD)
    line, field, kind, message = BAD_ERRORS[0]
    assert str(err) == f"{BAD}:{line}: {field}: {message}"
    assert (err.line, err.field, err.kind) == (line, field, kind)


def test_skip_policy_counts_every_problem_by_kind() -> None:
    parsed = read_preference_file(BAD, on_bad="skip")
    assert len(parsed.records) == 1 and parsed.records_seen == 6
    assert [(e.line, e.field, e.kind, e.message) for e in parsed.problems.errors] == BAD_ERRORS
    assert parsed.problems.counts == {
        "identical_replies": 1,
        "empty_reply": 1,
        "prompt_not_user": 1,
        "schema": 2,
    }
    assert parsed.problems.examples["empty_reply"] == [f"{BAD}:3: {BAD_ERRORS[1][1]}: {BAD_ERRORS[1][3]}"]


def test_json_array_errors_name_the_record() -> None:
    path = str(FIXTURES / "bad_pairs_array.json")
    err = _error(path)
    assert str(err) == (
        f"{path}:1 (record 2): response_k: same text as the chosen reply (response_j); "
        "a preference pair needs two different replies"
    )
    assert (err.record, err.kind) == (2, "identical_replies")


def _gpt(value: Any) -> dict[str, Any]:
    return {"from": "gpt", "value": value}


HUMAN = {"from": "human", "value": "Q?"}
HH = "\n\nHuman: Q?\n\nAssistant: "

RECORD_ERRORS = [
    # (first record, bad record, field, kind, message)
    ({"conversations": [HUMAN], "chosen": _gpt("a"), "rejected": _gpt("b")},
     {"conversations": [HUMAN], "chosen": _gpt(""), "rejected": _gpt("b")},
     "chosen.value", "empty_reply", EMPTY),
    (None, {"conversations": [HUMAN, _gpt("x")], "chosen": _gpt("a"), "rejected": _gpt("b")},
     "conversations", "prompt_not_user", NOT_USER),
    (None, {"conversations": [HUMAN], "chosen": HUMAN, "rejected": _gpt("b")},
     "chosen", "schema", "a reply must be an assistant turn, got 'user'"),
    (None, {"conversations": [HUMAN], "chosen": "a", "rejected": _gpt("b")},
     "chosen", "schema", 'must be a turn object like {"from": "gpt", "value": ...}, got string'),
    (None, {"conversations": [{"from": "humn", "value": "Q?"}], "chosen": _gpt("a"), "rejected": _gpt("b")},
     "conversations[0].from", "schema",
     "unknown role 'humn'; expected one of human, gpt, observation, function_call, system"),
    ({"messages": [U, _a("x")], "label": True}, {"messages": [U, _a("x")], "label": "yes"},
     "label", "schema", "must be a boolean (true = desirable, false = undesirable), got string"),
    (None, {"messages": [U, _a("x"), U], "label": True},
     "messages[2]", "schema", "the last turn must be the assistant reply that the label grades, got 'user'"),
    (None, {"messages": [U, _a(" ")], "label": True},
     "messages[1].content", "empty_reply", "empty reply: a KTO record needs a reply"),
    (None, {"messages": [{"role": "system", "content": "s"}, _a("x")], "label": True},
     "messages", "prompt_not_user", "the prompt has no user turn; the replies must answer one"),
    (None, {"chosen": HH + "Yes.", "rejected": "\n\nHuman: Other?\n\nAssistant: No."},
     "rejected", "prompt_mismatch", MISMATCH),
    (None, {"chosen": HH + "Yes.", "rejected": HH + "Yes."},
     "rejected", "identical_replies", SAME),
    (None, {"chosen": HH + "Yes.", "rejected": HH},
     "rejected", "empty_reply", EMPTY),
    (None, {"chosen": "Yes.", "rejected": "No."},
     "chosen", "schema",
     "expected an HH transcript: turns that start with '\\n\\nHuman: ' or '\\n\\nAssistant: '"),
    (None, {"chosen": [U, _a("a")], "rejected": [U, _a("b"), U]},
     "rejected[2]", "schema", "must end on the assistant's reply, got 'user'"),
    (None, {"chosen": [U, _a("a")], "rejected": [{"role": "user", "content": "Other?"}, _a("b")]},
     "rejected[0]", "prompt_mismatch", MISMATCH),
    (None, {"prompt": 3, "chosen": "a", "rejected": "b"},
     "prompt", "schema", "must be a string or an array of messages, got number"),
    (None, {"prompt": [U, _a("x")], "chosen": "a", "rejected": "b"},
     "prompt", "prompt_not_user", NOT_USER),
    (None, {"prompt": "p", "chosen": [_a("a"), _a("b")], "rejected": "b"},
     "chosen", "schema", "must hold exactly one assistant message, got 2"),
    ({"prompt": "p", "completion": "a", "label": True}, {"prompt": "p", "completion": "a"},
     "label", "schema", "missing required field"),
    (None, {"question": None, "response_j": "a", "response_k": "b"},
     "question", "schema", "must be a string, got null"),
    (None, {"question": "q", "response_j": "a", "response_k": 5},
     "response_k", "schema", "must be a string, got number"),
    (None, {"question": "q", "response_j": "", "response_k": "b"},
     "response_j", "empty_reply", EMPTY),
    (None, {"instruction": "i", "chosen": "a", "rejected": "a"},
     "rejected", "identical_replies", SAME),
    (None, {"input": [], "preferred_output": [_a("a")], "non_preferred_output": [_a("b")]},
     "input", "schema", "must be an object with 'messages', got array"),
    (None, {"input": {"messages": [U]}, "preferred_output": [U], "non_preferred_output": [_a("b")]},
     "preferred_output[0]", "schema", "a reply must be an assistant turn, got 'user'"),
]  # fmt: skip


@pytest.mark.parametrize(("first", "bad", "field", "kind", "message"), RECORD_ERRORS)
def test_record_errors_name_line_field_and_kind(
    tmp_path: Path, first: dict[str, Any] | None, bad: dict[str, Any], field: str, kind: str, message: str
) -> None:
    records = [bad] if first is None else [first, bad]
    path = _jsonl(tmp_path, *records)
    err = _error(path)
    line = len(records)
    assert str(err) == f"{path}:{line}: {field}: {message}"
    assert (err.line, err.field, err.kind) == (line, field, kind)
    skipped = read_preference_file(path, on_bad="skip")
    assert len(skipped.records) == len(records) - 1 and skipped.problems.counts == {kind: 1}


def test_unknown_format_and_one_format_per_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, {"foo": 1})
    err = _error(path)
    assert err.kind == "unknown_format" and str(err).startswith(
        f"{path}:1: cannot tell the record's preference format from its keys (foo); known formats: "
        "openai_preference ('input' + 'preferred_output' + 'non_preferred_output'); "
    )
    mixed = _jsonl(tmp_path, {"chosen": HH + "a", "rejected": HH + "b"}, {"question": "q", "response_j": "a",
                   "response_k": "b"}, name="mixed.jsonl")  # fmt: skip
    err = _error(mixed)
    assert str(err) == (
        f"{mixed}:2: record is in 'stack_exchange' format but the file's first record is 'hh'; "
        "one file must hold one format"
    )
    assert err.kind == "format_mismatch"


def test_a_wrong_explicit_format_says_so(tmp_path: Path) -> None:
    path = str(FIXTURES / "stack_exchange.json")
    err = _error(path, fmt="trl_explicit")
    assert err.kind == "format_mismatch" and str(err) == (
        f"{path}:2 (record 1): prompt: missing required field (format is set to 'trl_explicit' but the "
        "record's keys look like 'stack_exchange'; fix `format:` or use auto)"
    )
    with pytest.raises(ValueError, match="unknown preference format 'openai'"):
        read_preference_file(path, fmt="openai")
    with pytest.raises(ValueError, match="unknown on_bad_record 'ignore'"):
        read_preference_file(path, on_bad="ignore")


def test_file_level_problems_raise_even_when_skipping(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="file is empty: no records"):
        read_preference_file(empty, on_bad="skip")
    truncated = tmp_path / "t.json"
    truncated.write_text('[{"prompt": "p", "chosen": "a", "rejected": "b"},')
    with pytest.raises(DataError, match="the array is not closed"):
        read_preference_file(truncated, on_bad="skip")
    bad_json = tmp_path / "b.jsonl"
    bad_json.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": \n')
    parsed = read_preference_file(bad_json, on_bad="skip")
    assert len(parsed.records) == 1 and parsed.problems.counts == {"invalid_json": 1}


# ------------------------------------------------------------------------------------------ IR


def test_record_invariants_and_unpair() -> None:
    prompt = _msgs(("user", "q"))
    a, b = Message("assistant", "a"), Message("assistant", "b")
    with pytest.raises(ValueError, match="must end on a user turn"):
        PreferenceRecord(_msgs(("user", "q"), ("assistant", "x")), a, b)
    with pytest.raises(ValueError, match="carries no label"):
        PreferenceRecord(prompt, a, b, label=True)
    with pytest.raises(ValueError, match="needs a label"):
        PreferenceRecord(prompt, a)
    with pytest.raises(ValueError, match="must be an assistant message"):
        PreferenceRecord(prompt, Message("user", "a"), b)
    pair = PreferenceRecord(prompt, a, b, source="f", line=3)
    good, bad = unpair(pair)
    assert (good.chosen, good.label, bad.chosen, bad.label) == (a, True, b, False)
    assert good.kind == bad.kind == "unpaired" and unpair(good) == [good]
    conv = pair.conversation(b)
    assert [m.trained for m in conv.messages] == [False, True] and conv.messages[-1].content == "b"


def test_content_hash_ignores_where_a_record_came_from_but_not_its_label() -> None:
    prompt = _msgs(("user", "q"))
    a, b = Message("assistant", "a"), Message("assistant", "b")
    one = PreferenceRecord(prompt, a, b, source="x.jsonl", line=1)
    assert one.content_hash() == PreferenceRecord(prompt, a, b, source="y.json", line=9).content_hash()
    assert one.content_hash() != PreferenceRecord(prompt, b, a).content_hash()
    assert (
        PreferenceRecord(prompt, a, label=True).content_hash()
        != PreferenceRecord(prompt, a, label=False).content_hash()
    )
    kept, dropped = dedup_records(
        [one, PreferenceRecord(prompt, a, b, line=5), PreferenceRecord(prompt, b, a)]
    )
    assert (len(kept), dropped, kept[0]) == (2, 1, one)


def test_split_is_the_sft_content_hash_rule() -> None:
    records = [
        PreferenceRecord(_msgs(("user", f"q{i}")), Message("assistant", "a"), Message("assistant", "b"))
        for i in range(200)
    ]
    train, held = split_records(records, 0.25, seed=7)
    assert len(train) + len(held) == 200 and 25 <= len(held) <= 75
    assert all(side_of(r.content_hash(), "train", 0.25, 7, False) == "eval" for r in held)
    assert split_records(list(reversed(records)), 0.25, seed=7)[1] == list(reversed(held))  # order-free


# ------------------------------------------------------------------------------------------ rows


def test_rows_round_trip_through_arrow() -> None:
    call = {"id": "c1", "name": "f", "arguments": {"x": 1}}
    records = [
        *read_preference_file(FIXTURES / "openai_preference.jsonl").records,
        *read_preference_file(FIXTURES / "sharegpt_kto.json").records,
        PreferenceRecord(
            (Message("user", "go"), Message("assistant", "", tool_calls=(call,)),
             Message("tool", "ok", name="f"), Message("user", "and?")),
            Message("assistant", "", tool_calls=(call,)), Message("assistant", "done"), source="s", line=4,
        ),
    ]  # fmt: skip
    rows = [record_to_row(r) for r in records]
    assert all(list(row) == list(PREFERENCE_ROW_COLUMNS) for row in rows)
    assert [row_to_record(row) for row in rows] == records
    table = pa.Table.from_pylist(rows)  # one Arrow type per column, paired and unpaired rows together
    assert (
        str(table.schema.field("label").type) == "int64"
        and str(table.schema.field("rejected").type) == "string"
    )
    assert rows_to_records(table.to_pydict()) == records
    assert rows[3]["rejected"] == "" and rows[3]["label"] == 0


# ------------------------------------------------------------------------------------------ real files

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present on this machine")


@needs_shared
def test_llamafactory_dpo_and_kto_demos_read_cleanly() -> None:
    dpo = read_preference_file(SHARED / "llamafactory" / "dpo_en_demo.json")
    assert (dpo.format, dpo.counts, dpo.problems.total) == ("sharegpt_dpo", {"paired": 300, "unpaired": 0}, 0)
    assert sum(1 for r in dpo.records if r.prompt[0].role == "system") == 80
    assert max(len(r.prompt) for r in dpo.records) == 13
    kto = read_preference_file(SHARED / "llamafactory" / "kto_en_demo.json")
    assert (kto.format, kto.counts, kto.problems.total) == ("sharegpt_kto", {"paired": 0, "unpaired": 300}, 0)
    assert sum(1 for r in kto.records if r.label) == 150
    for name, direct in (("dpo_en_demo", dpo), ("kto_en_demo", kto)):
        ref = f"{SHARED}/llamafactory/dataset_info.json#{name}"
        assert is_preference_file(ref)
        via_catalog = read_preference_file(ref)
        assert via_catalog.source == ref and via_catalog.format == direct.format
        assert [r.content_hash() for r in via_catalog.records] == [r.content_hash() for r in direct.records]


@needs_shared
def test_stack_exchange_paired_reads_cleanly() -> None:
    parsed = read_preference_file(SHARED / "stack-exchange-paired" / "stack_exchange_paired_tiny.json")
    assert (parsed.format, parsed.counts, parsed.problems.total) == (
        "stack_exchange",
        {"paired": 25, "unpaired": 0},
        0,
    )
    assert all(len(r.prompt) == 1 and r.prompt[0].role == "user" for r in parsed.records)


@needs_shared
def test_sft_catalog_entries_are_not_preference_data() -> None:
    assert not is_preference_file(f"{SHARED}/llamafactory/dataset_info.json#identity")
    with pytest.raises(DataError, match="not a preference dataset"):
        read_preference_file(f"{SHARED}/llamafactory/dataset_info.json#identity")
    assert not is_preference_file(SHARED / "llamafactory" / "alpaca_en_demo.json")
    assert not is_preference_file(SHARED / "llamafactory" / "wiki_demo.txt")


def test_held_out_pairs_written_by_the_plan_read_back_unchanged(tmp_path: Path) -> None:
    from tuneforge.data.preference.plan import write_pairs

    call = {"id": "c1", "name": "f", "arguments": {"x": 1}}
    pairs = [
        read_preference_file(FIXTURES / "openai_preference.jsonl").records[0],
        *read_preference_file(FIXTURES / "sharegpt_dpo.json").records,
        PreferenceRecord(
            (
                Message("user", "go"),
                Message("assistant", "", tool_calls=(call,)),
                Message("tool", "ok", name="f"),
            ),
            Message("assistant", "done"),
            Message("assistant", "", tool_calls=(call,)),
        ),  # fmt: skip
    ]
    labelled = [one for rec in pairs for one in unpair(rec)]  # a KTO plan's held-out file
    for name, records, fmt in (("pairs", pairs, "trl_explicit"), ("kto", labelled, "trl_unpaired")):
        parsed = read_preference_file(write_pairs(records, tmp_path / f"{name}.jsonl"))
        assert parsed.format == fmt and parsed.problems.total == 0
        assert [r.content_hash() for r in parsed.records] == [r.content_hash() for r in records]


def test_held_out_pairs_keep_the_offered_tools(tmp_path: Path) -> None:
    from tuneforge.data.preference.plan import write_pairs

    with_tools = read_preference_file(FIXTURES / "openai_preference.jsonl").records[1]
    assert with_tools.tools is not None
    (back,) = read_preference_file(write_pairs([with_tools], tmp_path / "eval.jsonl")).records
    assert back.tools == with_tools.tools
