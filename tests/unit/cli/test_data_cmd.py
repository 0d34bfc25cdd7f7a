"""``tuneforge data validate`` and ``tuneforge data preview`` through the real entry point, including
every command shown in docs/data.md (so the docs cannot drift from the code), and on preference files
in-process through typer's CliRunner."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

REPO = Path(__file__).resolve().parents[3]
EXE = str(Path(sys.executable).parent / "tuneforge")
ASSETS = "platform/tuneforge/assets/data"
SHARED = REPO.parent / "shared" / "data"
FIXTURES = REPO / "tests" / "fixtures" / "data" / "preference"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([EXE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _doc_commands() -> list[tuple[str, int]]:
    """``$ tuneforge data ...`` lines of docs/data.md with their expected exit code (``# exit 1``)."""
    found = []
    for line in (REPO / "docs" / "data.md").read_text().splitlines():
        if line.startswith("$ tuneforge data "):
            command, _, comment = line[2:].partition("#")
            code = int(m.group(1)) if (m := re.search(r"exit (\d+)", comment)) else 0
            found.append((command.strip(), code))
    return found


def test_docs_show_commands() -> None:
    assert len(_doc_commands()) >= 4


@pytest.mark.parametrize(("command", "code"), _doc_commands())
def test_documented_commands_run(command: str, code: int) -> None:
    out = _run(*shlex.split(command)[1:])
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_validate_bundled_files_json() -> None:
    out = _run("data", "validate", f"{ASSETS}/tiny_chat.jsonl", f"{ASSETS}/tiny_alpaca.jsonl", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(f["format"], f["records"], f["errors"]) for f in report["files"]] == [
        ("openai", 600, []),
        ("alpaca", 400, []),
    ]


def test_validate_collects_every_problem_per_file(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "asistant", "content": "yo"}]}
    lines = [json.dumps(good), json.dumps(bad), "{not json", json.dumps(good)] + [json.dumps(bad)] * 60
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = _run("data", "validate", str(path), str(empty), str(tmp_path / "missing.jsonl"), "--json")
    assert out.returncode == 1
    files = json.loads(out.stdout.strip().splitlines()[-1])["files"]
    first = files[0]
    assert (first["records"], first["problems"], len(first["errors"])) == (2, 62, 50)
    assert first["errors"][0] == {
        "line": 2,
        "field": "messages[1].role",
        "message": "unknown role 'asistant'; expected one of assistant, system, tool, user",
        "kind": "schema",
    }
    assert first["errors"][1]["line"] == 3 and first["errors"][1]["message"].startswith("invalid JSON")
    assert files[1]["errors"][0]["message"] == "file is empty: no records"
    assert files[2]["errors"][0]["message"] == "file not found"
    assert f"{path}:2: messages[1].role: unknown role 'asistant'" in out.stdout
    assert "... and 12 more" in out.stdout


def test_preview_marks_trained_spans_and_reports_statistics() -> None:
    out = _run("data", "preview", f"{ASSETS}/tiny_chat.jsonl", "-n", "1", "--max-seq-len", "64", "--json")
    assert out.returncode == 0, out.stderr
    assert "<|im_start|>assistant\n⟦1 plus 12 is 13.<|im_end|>⟧" in out.stdout
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["records"] == 600 and stats["format"] == "openai"
    assert stats["trained_share_by_role"] == {"assistant": 1.0}
    assert 0 < stats["trained_share"] < 1
    length = stats["length"]
    assert length["p50"] <= length["p90"] <= length["p99"] <= length["max"]
    assert stats["over_max_seq_len"] == stats["truncated"] > 0  # default truncation=truncate
    for label in ("records", "trained from assistant", "p50 / p90 / p99 / max", "longer than max_seq_len=64"):
        assert label in out.stdout


def test_preview_drop_policy_and_bad_format_option() -> None:
    out = _run("data", "preview", f"{ASSETS}/tiny_chat.jsonl", "-n", "0", "--max-seq-len", "40",
               "--truncation", "drop", "--json")  # fmt: skip
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["dropped_too_long"] == stats["over_max_seq_len"] > 0 and stats["truncated"] == 0
    out = _run("data", "preview", f"{ASSETS}/tiny_chat.jsonl", "--format", "csv")
    assert out.returncode == 1 and "unknown format 'csv'" in out.stderr


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present on this machine")
def test_preview_catalog_entry_and_raw_text() -> None:
    out = _run("data", "preview", f"{SHARED}/llamafactory/dataset_info.json#identity", "-n", "1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["records"] == 91
    out = _run("data", "preview", f"{SHARED}/llamafactory/wiki_demo.txt", "-n", "1", "--max-seq-len", "128",
               "--json")  # fmt: skip
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["trained_share"] == 1.0 and stats["chunked"] == stats["over_max_seq_len"] > 0


# --- preference files, in-process through typer's CliRunner ---------------------------------------


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
