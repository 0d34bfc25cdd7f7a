"""``tuneforge data validate`` / ``preview`` on preference files, in-process through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "data" / "preference"
SHARED = REPO.parent / "shared" / "data"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", *args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_reports_format_and_kinds() -> None:
    code, output = _invoke(
        "validate", str(FIXTURES / "sharegpt_dpo.json"), str(FIXTURES / "sharegpt_kto.json"), "--json"
    )
    assert code == 0, output
    assert f"ok  {FIXTURES / 'sharegpt_dpo.json'}: 2 records (sharegpt_dpo preference: 2 paired)" in output
    assert f"ok  {FIXTURES / 'sharegpt_kto.json'}: 2 records (sharegpt_kto preference: 2 unpaired)" in output
    files = json.loads(output.strip().splitlines()[-1])["files"]
    assert [(f["format"], f["records"], f["preference"]) for f in files] == [
        ("sharegpt_dpo", 2, {"paired": 2, "unpaired": 0}),
        ("sharegpt_kto", 2, {"paired": 0, "unpaired": 2}),
    ]


def test_validate_lists_every_bad_pair_with_file_line_field() -> None:
    bad, array = FIXTURES / "bad_pairs.jsonl", FIXTURES / "bad_pairs_array.json"
    code, output = _invoke("validate", str(bad), str(array), "--json")
    assert code == 1 and "Traceback" not in output
    assert f"bad {bad}: 5 problem(s), 1 good records" in output
    for line in (
        f"{bad}:2: non_preferred_output: same text as the chosen reply (preferred_output); "
        "a preference pair needs two different replies",
        f"{bad}:3: non_preferred_output[0].content: empty reply: a preference pair needs two non-empty "
        "replies",
        f"{bad}:4: input.messages: the prompt must end on a user turn (the replies answer it), got "
        "'assistant'",
        f"{bad}:5: non_preferred_output: missing required field",
        f"{bad}:6: preferred_output: must be an array holding one assistant message, got string",
        f"{array}:1 (record 2): response_k: same text as the chosen reply (response_j); "
        "a preference pair needs two different replies",
    ):
        assert f"    {line}\n" in output
    files = json.loads(output.strip().splitlines()[-1])["files"]
    assert [e["kind"] for e in files[0]["errors"]] == [
        "identical_replies", "empty_reply", "prompt_not_user", "schema", "schema",
    ]  # fmt: skip


def test_validate_with_an_explicit_preference_format_and_an_unknown_one() -> None:
    code, output = _invoke("validate", str(FIXTURES / "hh.jsonl"), "--format", "hh")
    assert code == 0 and "(hh preference: 2 paired)" in output
    code, output = _invoke("validate", str(FIXTURES / "hh.jsonl"), "--format", "dpo")
    assert code == 1 and "unknown format 'dpo'" in output


def test_preview_shows_the_prompt_once_and_each_reply_trained() -> None:
    path = str(FIXTURES / "sharegpt_dpo.json")
    code, output = _invoke("preview", path, "-n", "2", "--max-seq-len", "256", "--markers", "--json")
    assert code == 0, output
    assert "sharegpt_dpo, 2 preference records (2 paired)" in output
    assert "sharegpt_dpo.json:9 · paired · prompt" in output
    assert "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n\nchosen:\n⟦6<|im_end|>⟧\n" in output
    assert "rejected:\n⟦Seven, probably.<|im_end|>⟧\n" in output
    assert "<|im_start|>assistant\n4<|im_end|>" in output  # the earlier answer is context, not trained
    stats = json.loads(output.strip().splitlines()[-1])
    assert (stats["format"], stats["records"], stats["paired"], stats["over_max_seq_len"]) == (
        "sharegpt_dpo",
        2,
        2,
        0,
    )


def test_preview_kto_and_over_long_records() -> None:
    path = str(FIXTURES / "sharegpt_kto.json")
    code, output = _invoke("preview", path, "-n", "1", "--max-seq-len", "12", "--markers", "--json")
    assert code == 0, output
    assert "unpaired · desirable" in output and "completion:\n⟦Paris.<|im_end|>⟧" in output
    assert "cut to 12: prompt head -" in output
    stats = json.loads(output.strip().splitlines()[-1])
    assert stats["unpaired"] == 2 and stats["truncated"] == stats["over_max_seq_len"] == 2
    code, output = _invoke(
        "preview", path, "-n", "1", "--max-seq-len", "12", "--truncation", "drop", "--json"
    )
    assert code == 0 and "dropped: longer than 12" in output
    assert json.loads(output.strip().splitlines()[-1])["dropped_too_long"] == 2


def test_preview_of_bad_pairs_counts_the_skipped_ones() -> None:
    code, output = _invoke("preview", str(FIXTURES / "bad_pairs.jsonl"), "-n", "1", "--json")
    assert code == 0, output
    assert "skipped (identical_replies): 1, e.g." in output
    assert json.loads(output.strip().splitlines()[-1])["skipped"] == 5


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present on this machine")
def test_preview_catalog_dpo_entry() -> None:
    ref = f"{SHARED}/llamafactory/dataset_info.json#dpo_en_demo"
    code, output = _invoke("preview", ref, "-n", "1", "--max-seq-len", "512", "--json")
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["paired"] == 300
