"""Bad input: each kind gets a clear ``file:line: field: message`` DataError, or with
``on_bad="skip"`` is counted per kind with its first examples; file-level problems always raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data import DataError, ProblemLog, read_conversations, read_source

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _error(path: Path, fmt: str = "auto") -> DataError:
    with pytest.raises(DataError) as info:
        list(read_conversations(path, fmt))
    return info.value


@pytest.mark.parametrize(("name", "data"), [("e.jsonl", ""), ("e.json", "  \n"), ("e.txt", "\n\n")])
def test_empty_files_are_an_error(tmp_path: Path, name: str, data: str) -> None:
    err = _error(_write(tmp_path, name, data))
    assert (err.kind, err.message) == ("empty_file", "file is empty: no records")
    with pytest.raises(DataError, match="file is empty"):
        read_source(tmp_path / name, on_bad="skip")  # nothing to skip to


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    body = json.dumps(GOOD) + "\n"
    for name, data in (("b.jsonl", body), ("b.json", f"[{body}]"), ("b.txt", "some text\n")):
        convs = list(read_conversations(_write(tmp_path, name, b"\xef\xbb\xbf" + data.encode())))
        assert len(convs) == 1, name


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "l.jsonl", json.dumps(GOOD).encode() + b'\n{"text": "caf\xe9"}\n')
    err = _error(path)
    assert (err.line, err.kind) == (2, "encoding") and "not valid UTF-8" in err.message
    err = _error(_write(tmp_path, "l.json", b'[\n{"text": "caf\xe9"}]'))
    assert (err.line, err.kind) == (2, "encoding")


def test_truncated_json(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "t.jsonl", json.dumps(GOOD) + "\n" + json.dumps(GOOD)[:30] + "\n"))
    assert (err.line, err.kind) == (2, "invalid_json") and "truncated record?" in err.message
    err = _error(_write(tmp_path, "t.json", "[\n" + json.dumps(GOOD) + ",\n" + json.dumps(GOOD)[:30]))
    assert err.kind == "invalid_json" and "truncated" in err.message
    err = _error(_write(tmp_path, "u.json", "[\n" + json.dumps(GOOD) + ",\n"))
    assert "the array is not closed (truncated file?)" in err.message


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]},
         "messages[0].content", "must be a string or an array of text parts, got null"),
        ({"instruction": "a", "output": None}, "output", "must be a string, got null"),
        ({"instruction": "a", "output": 42}, "output", "must be a string, got number"),
        ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": None}]},
         "conversations[1].value", "must be a string, got null"),
        ({"text": ["not", "a", "string"]}, "text", "must be a string, got array"),
    ],
)  # fmt: skip
def test_null_or_non_string_content(tmp_path: Path, record: dict, field: str, message: str) -> None:
    err = _error(_write(tmp_path, "n.jsonl", json.dumps(record) + "\n"))
    assert (err.line, err.field, err.message) == (1, field, message)


def test_no_trainable_turn(tmp_path: Path) -> None:
    only_user = {"messages": [{"role": "user", "content": "hi"}]}
    all_zero = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}]
    }
    err = _error(_write(tmp_path, "a.jsonl", json.dumps(only_user) + "\n"))
    assert err.kind == "no_trainable_turn" and "no assistant message" in err.message
    err = _error(_write(tmp_path, "b.jsonl", json.dumps(all_zero) + "\n"))
    assert str(err).endswith("b.jsonl:1: messages: every assistant message has weight 0; nothing to train on")


def test_explicit_format_that_does_not_match_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.jsonl", json.dumps(GOOD) + "\n")
    err = _error(path, "alpaca")
    assert err.kind == "format_mismatch" and err.field == "instruction"
    assert "format is set to 'alpaca' but the record's keys look like 'openai'" in err.message


def test_skip_counts_each_kind_and_keeps_the_good_records(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        '{"messages": [',  # truncated
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
        json.dumps({"instruction": "a", "output": "b"}),  # a second format in the file
        json.dumps({"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}),
        json.dumps({"messages": [{"role": "bot", "content": "y"}]}),
    ]
    path = _write(tmp_path, "mixed.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: invalid JSON"):
        read_source(path)  # the default policy stops at the first
    parsed = read_source(path, on_bad="skip")
    assert [c.line for c in parsed.conversations] == [1, 6]
    assert parsed.problems.counts == {
        "invalid_json": 1,
        "no_trainable_turn": 1,
        "schema": 2,
        "format_mismatch": 1,
    }
    report = parsed.problems.to_dict()
    assert report["skipped"] == 5
    assert report["by_kind"]["schema"]["examples"][0].startswith(
        f"{path}:4: messages[0].role: unknown role 'bot'"
    )
    assert [e.line for e in parsed.problems.errors] == [2, 3, 4, 5, 7]


def test_problem_log_caps_examples_and_errors() -> None:
    log = ProblemLog(max_examples=2, max_errors=3)
    for i in range(10):
        log.add(DataError("bad", "f.jsonl", i + 1, kind="schema"))
    assert log.total == 10 and len(log.examples["schema"]) == 2 and len(log.errors) == 3
    other = ProblemLog()
    other.merge(log)
    assert other.counts == {"schema": 10} and len(other.examples["schema"]) == 2


def test_unsupported_extension_and_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unsupported file extension '\.csv'"):
        read_source(_write(tmp_path, "d.csv", "a,b\n"))
    with pytest.raises(ValueError, match="unknown on_bad_record 'ignore'"):
        read_source(_write(tmp_path, "g.jsonl", json.dumps(GOOD)), on_bad="ignore")
