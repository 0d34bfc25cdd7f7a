"""The modes commands through the real entry point, self-instruct and baselines with a tiny model,
and a job config's ``modes:`` section compiled to training files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.config import TinyModelConfig
from tuneforge.data import read_conversations
from tuneforge.modes import get_mode

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "tuneforge")
SHARED = REPO.parent / "shared" / "data"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init causal LM saved as a Hugging Face directory (any causal LM would do)."""
    from tuneforge.models.factory import build_tiny_model
    from tuneforge.models.io import save_hf
    from tuneforge.models.tokenizer import train_bpe_tokenizer

    texts = ["Instruction: Write a poem. Input: Output: Roses are red.", "The cat sat on the mat."] * 20
    tok = train_bpe_tokenizer(texts, 300)
    cfg = TinyModelConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_attention_heads=2)
    model = build_tiny_model(cfg, len(tok), 0, tok.pad_token_id, tok.eos_token_id)
    return save_hf(model, tok, tmp_path_factory.mktemp("tiny") / "model")


def test_modes_list_json() -> None:
    proc = run("modes", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    modes = json.loads(proc.stdout.strip().splitlines()[-1])["modes"]
    assert [m["name"] for m in modes][:3] == ["instruct", "chat", "chat+instruct"] and len(modes) == 11
    assert {"name": "editor", "inputs": ["source", "corrected"], "metric": "gleu"} in modes


def test_data_build_editor_from_two_files(tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("He go home.\nShe have a cat.\n")
    (tmp_path / "ref.txt").write_text("He goes home.\nShe has a cat.\n")
    out = tmp_path / "out.jsonl"
    proc = run(
        "data", "build", "editor", "--from", "src.txt", "ref.txt", "--out", str(out), "--json", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["records"] == 2
    assert "editor: 2 records" in proc.stdout and "He go home." in proc.stdout  # counts + sample
    convs = list(read_conversations(out))  # OpenAI chat JSONL that the data layer reads back
    assert [c.messages[-1].content for c in convs] == ["He goes home.", "She has a cat."]


def test_data_build_synthetic_filter_with_seed_and_limit(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        proc = run("data", "build", "filter", "--out", str(out), "--seed", "3", "--limit", "7")
        assert proc.returncode == 0, proc.stderr
    assert a.read_bytes() == b.read_bytes() and len(a.read_text().splitlines()) == 7


def test_data_build_errors_are_one_line(tmp_path: Path) -> None:
    proc = run("data", "build", "nope", "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 1 and "unknown mode 'nope'" in proc.stderr
    proc = run("data", "build", "editor", "--from", "missing.txt", "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 1 and "missing.txt" in proc.stderr


def test_selfinstruct_counts_every_candidate(tiny_model: Path, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"instruction": f"Write poem {i}.", "instances": [{"input": "", "output": "Roses."}]}
        for i in range(4)
    ]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "gen.jsonl"
    proc = run("selfinstruct", "--model", str(tiny_model), "--seed-tasks", str(seeds), "--out", str(out),
               "--n", "2", "--max-attempts", "3", "--max-new-tokens", "12", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])["counts"]
    assert counts["attempted"] == 3 or counts["accepted"] == 2  # stops at n accepted or max attempts
    assert counts["attempted"] == sum(v for k, v in counts.items() if k != "attempted")
    assert out.exists() and len(out.read_text().splitlines()) == counts["accepted"]


def test_selfinstruct_parse_and_filters() -> None:
    from tuneforge.modes.instruct import InstructExample
    from tuneforge.modes.selfinstruct import is_near_duplicate, parse_task, render_prompt

    task = parse_task(" Name a color.\nInput: <noinput>\nOutput: Blue.\n\nTask 5:\nInstruction: x")
    assert task == InstructExample("Name a color.", "Blue.", "")
    assert parse_task("no fields here") is None
    assert is_near_duplicate("Name a color please.", ["Name a color."]) and not is_near_duplicate(
        "Add 2 and 3.", ["Name a color."]
    )
    prompt = render_prompt([InstructExample("Add.", "5", "2 3")])
    assert prompt.endswith("Task 1:\nInstruction: Add.\nInput: 2 3\nOutput: 5\n\nTask 2:\nInstruction:")


def test_prompting_baselines_report_three_settings(tiny_model: Path) -> None:
    from tuneforge.modes.baselines import pick_shots, prompting_baselines, with_shots
    from tuneforge.modes.editor import EditorExample
    from tuneforge.registry.resolve import load_model_ref

    mode = get_mode("editor")
    convs = [mode.compile(EditorExample(f"He go {i}.", f"He goes {i}.")) for i in range(4)]
    shot = with_shots(convs[0], pick_shots(0, 2, convs, same_set=True))
    assert [m.content for m in shot.messages][1:] == [
        "He go 1.",
        "He goes 1.",
        "He go 2.",
        "He goes 2.",
        "He go 0.",
        "He goes 0.",
    ]
    assert shot.messages[2].train is False and shot.messages[-1].trained
    pair = load_model_ref(str(tiny_model))
    report = prompting_baselines(pair, pair, convs, mode, 2, max_new_tokens=4)
    assert set(report) == {"base_zero_shot", "base_k_shot", "tuned"}
    assert report["tuned"] == report["base_zero_shot"] and set(report["tuned"]) == set(mode.metrics)


def test_job_modes_section_compiles_to_train_files(tmp_path: Path) -> None:
    from tuneforge.config import load_config
    from tuneforge.modes.materialize import with_mode_sources

    (tmp_path / "src.txt").write_text("He go home.\n")
    (tmp_path / "ref.txt").write_text("He goes home.\n")
    (tmp_path / "job.yaml").write_text(
        "data:\n  modes:\n"
        f"    - {{mode: editor, from: [{tmp_path}/src.txt, {tmp_path}/ref.txt], weight: 0.5}}\n"
        "    - {mode: filter, from: [], weight: 0.5, limit: 5, options: {n: 5}}\n"
    )
    job = load_config(tmp_path / "job.yaml", [])
    built = with_mode_sources(job, tmp_path / "run" / "modes")
    assert built.data.modes == [] and [s.weight for s in built.data.train_files] == [0.5, 0.5]
    assert [len(list(read_conversations(s.path))) for s in built.data.train_files] == [1, 5]
    assert with_mode_sources(built, tmp_path / "again") is built  # nothing left to build


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
def test_data_build_real_commit_diffs(tmp_path: Path) -> None:
    out = tmp_path / "diff.jsonl"
    proc = run(
        "data",
        "build",
        "diff",
        "--from",
        str(SHARED / "docs-diffs-rust-book" / "commits.jsonl"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "commit_hunks 70" in proc.stdout and len(out.read_text().splitlines()) == 70
