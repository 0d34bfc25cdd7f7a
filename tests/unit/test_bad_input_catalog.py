"""The catalogue of bad input: every user-facing mistake ends in one clear line and exit code 1.

Each case feeds one bad config, override, data file, model directory, output directory or
tracking URI through the real ``tuneforge`` entry point (in-process, typer's CliRunner) and checks:
exit code 1, no traceback (no exception escaped the CLI), exactly one ``error:`` line, and the
fragments that locate the problem (file, line or record, field) and say what is wrong.

Every case fails before Ray starts: ``ensure_ray`` is replaced by a tripwire, so a case that slips
past its check fails loudly instead of training. The one case that needs a live Ray instance (a
worker group larger than the machine) runs as a subprocess and is marked ``integration``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
TINY = "jobs/configs/finetune/tiny_cpu.yaml"
EXE = str(Path(sys.executable).parent / "tuneforge")

USER = {"role": "user", "content": "hi"}
ANSWER = {"role": "assistant", "content": "yo"}
GOOD = {"messages": [USER, ANSWER]}
EMPTY_ANSWER = {"messages": [USER, {**ANSWER, "content": ""}]}


class ReachedRay(AssertionError):
    """Raised by the tripwire: a bad input got as far as starting Ray."""


@dataclass
class Env:
    """What a case may use: its own directory and the prepared model directories."""

    tmp: Path
    models: dict[str, Path]

    def file(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    def jsonl(self, name: str, *records: object) -> Path:
        return self.file(name, "".join(json.dumps(r) + "\n" for r in records))

    def job(self, text: str, name: str = "job.yaml") -> Path:
        """A small job file; ``{data}`` is a good train file."""
        data = self.jsonl("good.jsonl", GOOD, {"messages": [USER, {"role": "assistant", "content": "hey"}]})
        return self.file(name, text.replace("{data}", str(data)))


#: Line numbers below refer to this text: data:1 train_files:2 trainer:3 max_steps:4 max_seq_len:5.
BASE = "data:\n  train_files: [{data}]\ntrainer:\n  max_steps: 2\n  max_seq_len: 64\n"


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Env], list[str]]  # builds the inputs, returns the CLI arguments
    expect: tuple[str, ...]  # fragments of the error line; "{tmp}" is the case's directory


def train(*overrides: str) -> list[str]:
    return ["train", TINY, *overrides]


def on_data(name: str, *records: object) -> Callable[[Env], list[str]]:
    """The demo job trained on one JSONL file of these records."""
    return lambda env: train(f"data.train_files=[{env.jsonl(name, *records)}]")


def on_file(name: str, data: str | bytes) -> Callable[[Env], list[str]]:
    return lambda env: train(f"data.train_files=[{env.file(name, data)}]")


def yaml_job(text: str) -> Callable[[Env], list[str]]:
    return lambda env: ["train", str(env.job(text))]


def on_model(model: str, *extra: str) -> Callable[[Env], list[str]]:
    """The demo job on a prepared local model directory (short sequences: the model has 64 positions)."""
    return lambda env: train(f"model.name_or_path={env.models[model]}", "trainer.max_seq_len=32", *extra)


def _different_run(env: Env) -> list[str]:
    from tuneforge.config import load_config, save_config

    out = env.tmp / "out"
    save_config(load_config(REPO / TINY, ["trainer.lr=0.5"]), out / "job.yaml")
    return train(f"trainer.output_dir={out}")


def _unrelated_dir(env: Env) -> list[str]:
    env.file("out/notes.txt", "my own files\n")
    return train(f"trainer.output_dir={env.tmp / 'out'}")


CONFIG_CASES = [
    Case("config-file-missing", lambda env: ["train", str(env.tmp / "missing.yaml")],
         ("missing.yaml", "config file not found")),
    Case("config-invalid-yaml", yaml_job("data:\n  train_files: [a.jsonl\ntrainer:\n  lr: 1\n"),
         ("job.yaml:", "invalid YAML")),
    Case("config-empty-file", yaml_job(""), ("job.yaml", "found an empty file")),
    Case("config-top-level-list", yaml_job("- data\n- trainer\n"), ("job.yaml", "found a list")),
    Case("config-unknown-section", yaml_job(BASE + "modle:\n  dtype: auto\n"),
         ("job.yaml:6: modle: unknown key; did you mean 'model'?",)),
    Case("config-key-typo", yaml_job(BASE.replace("max_steps", "max_step")),
         ("job.yaml:4: trainer.max_step: unknown key; did you mean 'max_steps'?",)),
    Case("config-no-data-section", yaml_job("trainer:\n  max_steps: 2\n"),
         ("job.yaml", "data: required key is missing")),
    Case("config-no-train-files", yaml_job("data:\n  train_files: []\n"),
         ("job.yaml:1: data: train_files: give at least one training file",)),
    Case("config-lr-not-a-number", yaml_job(BASE + "  lr: fast\n"),
         ("job.yaml:6: trainer.lr: input should be a valid number", "(got 'fast')")),
    Case("config-lr-negative", yaml_job(BASE + "  lr: -1\n"),
         ("job.yaml:6: trainer.lr: input should be greater than 0 (got -1)",)),
    Case("config-steps-fractional", yaml_job(BASE.replace("max_steps: 2", "max_steps: 1.5")),
         ("job.yaml:4: trainer.max_steps: input should be a valid integer", "(got 1.5)")),
    Case("config-bool-not-bool", yaml_job(BASE.replace("data:\n", "data:\n  packing: maybe\n")),
         ("job.yaml:2: data.packing: input should be a valid boolean", "(got 'maybe')")),
    Case("config-zero-stage-4", yaml_job(BASE + "distributed:\n  zero_stage: 4\n"),
         ("job.yaml:7: distributed.zero_stage: input should be 0, 1, 2 or 3 (got 4)",)),
    Case("config-eval-fraction-range", yaml_job(BASE.replace("data:\n", "data:\n  eval_fraction: 1.5\n")),
         ("job.yaml:2: data.eval_fraction: input should be less than 1 (got 1.5)",)),
    Case("config-template-unknown", yaml_job(BASE.replace("data:\n", "data:\n  template: vicuna\n")),
         ("job.yaml:2: data.template: input should be", "(got 'vicuna')")),
    Case("config-method-typo", yaml_job(BASE + "method:\n  name: lorra\n"),
         ("job.yaml:7: method.name: unknown method 'lorra'; did you mean 'lora'?",)),
    Case("config-key-of-other-method", yaml_job(BASE + "method:\n  name: full\n  r: 8\n"),
         ("job.yaml:8: method.r: unknown key for method 'full'",)),
    Case("config-warmup-both", yaml_job(BASE + "  warmup_steps: 5\n  warmup_ratio: 0.1\n"),
         ("job.yaml:3: trainer: set either warmup_steps or warmup_ratio, not both",)),
    Case("config-offload-needs-zero3",
         yaml_job(BASE + "distributed:\n  zero_stage: 2\n  offload_params: true\n"),
         ("job.yaml:6: distributed: offload_params requires zero_stage 3",)),
    Case("config-tiny-heads", yaml_job(BASE + "model:\n  tiny:\n    hidden_size: 65\n"),
         ("model.tiny: hidden_size (65) must be divisible by num_attention_heads (4)",)),
    Case("config-tiny-context", yaml_job(BASE.replace("max_seq_len: 64", "max_seq_len: 4096")),
         ("trainer.max_seq_len (4096) exceeds the tiny model's context (512",)),
    Case("config-early-stopping-no-eval", yaml_job(BASE + "  early_stopping: {patience: 2}\n"),
         ("job.yaml:3: trainer: early_stopping needs eval_every > 0",)),
    Case("config-weights-on-some-files", lambda env: train(
        f"data.train_files=[{{path: {env.jsonl('a.jsonl', GOOD)}, weight: 2}}, "
        f"{env.jsonl('b.jsonl', GOOD)}]"),
         ("<override>: data: train_files: set weight on every file or on none",)),
    Case("config-dropout-range", lambda env: train("model.dropout=1.5"),
         ("<override>: model.dropout: input should be less than 1 (got 1.5)",)),
    Case("override-no-equals", lambda env: train("trainer.lr"), ("<override>: expected dotted.key=value",)),
    Case("override-bad-value", lambda env: train("trainer.lr=[1"),
         ("<override>: trainer.lr: cannot parse value",)),
    Case("override-key-typo", lambda env: train("distributed.zero_stag=3"),
         ("<override>: distributed.zero_stag: unknown key; did you mean 'zero_stage'?",)),
    Case("override-into-scalar", lambda env: train("trainer.lr.x=1"),
         ("<override>: trainer.lr.x: trainer.lr is a float, not a section",)),
    Case("qlora-on-cpu", lambda env: train("method.name=qlora"), ("qlora",)),
]  # fmt: skip

DATA_CASES = [
    Case("data-file-missing", lambda env: train(f"data.train_files=[{env.tmp / 'nope.jsonl'}]"),
         ("{tmp}/nope.jsonl", "not found")),
    Case("data-unsupported-extension", on_file("d.csv", "a,b\n"),
         ("d.csv: unsupported file extension '.csv'",)),
    Case("data-empty-file", on_file("e.jsonl", ""), ("e.jsonl: file is empty: no records",)),
    Case("data-invalid-json", on_file("j.jsonl", json.dumps(GOOD) + "\n{'messages': []}\n"),
         ("j.jsonl:2: invalid JSON",)),
    Case("data-truncated-line", on_file("t.jsonl", json.dumps(GOOD) + "\n" + json.dumps(GOOD)[:25] + "\n"),
         ("t.jsonl:2: invalid JSON", "(truncated record?)")),
    Case("data-not-utf8", on_file("u.jsonl", json.dumps(GOOD).encode() + b'\n{"text": "caf\xe9"}\n'),
         ("u.jsonl:2: not valid UTF-8",)),
    Case("data-unknown-role",
         on_data("r.jsonl", GOOD, {"messages": [USER, {"role": "asistant", "content": "x"}]}),
         ("r.jsonl:2: messages[1].role: unknown role 'asistant'",)),
    Case("data-no-assistant", on_data("n.jsonl", {"messages": [USER]}),
         ("n.jsonl:1: messages: no assistant message",)),
    Case("data-all-weight-zero", on_data("w.jsonl", {"messages": [USER, {**ANSWER, "weight": 0}]}),
         ("w.jsonl:1: messages: every assistant message has weight 0",)),
    Case("data-null-content", on_data("c.jsonl", {"messages": [{**USER, "content": None}, ANSWER]}),
         ("c.jsonl:1: messages[0].content: must be a string or an array of text parts, got null",)),
    Case("data-empty-assistant-openai", on_data("ea.jsonl", GOOD, EMPTY_ANSWER),
         ("ea.jsonl:2: messages[1].content: empty assistant content", "(or give it weight 0)")),
    Case("data-blank-assistant-openai",
         on_data("eb.jsonl", {"messages": [USER, {**ANSWER, "content": "  \n"}]}),
         ("eb.jsonl:1: messages[1].content: empty assistant content",)),
    Case("data-empty-assistant-sharegpt", on_data("es.jsonl", {"conversations": [
        {"from": "human", "value": "hi"}, {"from": "gpt", "value": ""}]}),
         ("es.jsonl:1: conversations[1].value: empty assistant content",)),
    Case("data-empty-history-answer-alpaca", on_data("eh.jsonl", {
        "instruction": "a", "output": "b", "history": [["q", ""]]}),
         ("eh.jsonl:1: history[0][1]: empty assistant content",)),
    Case("data-empty-output-alpaca", on_data("eo.jsonl", {"instruction": "a", "output": ""}),
         ("eo.jsonl:1: output: must not be empty",)),
    Case("data-array-one-line-record-2", on_file("arr.json", json.dumps(
        [GOOD, {"messages": [USER, {"role": "bot", "content": "x"}]}])),
         ("arr.json:1 (record 2): messages[1].role: unknown role 'bot'",)),
    Case("data-array-not-object", on_file("arr2.json", json.dumps([GOOD, GOOD, "text"])),
         ("arr2.json:1 (record 3): a record must be a JSON object, got string",)),
    Case("data-array-truncated", on_file("arr3.json", json.dumps([GOOD, GOOD])[:-20]),
         ("arr3.json:1 (record 2): invalid JSON",)),
    Case("data-array-empty-assistant", on_file("arr4.json", json.dumps([GOOD, EMPTY_ANSWER])),
         ("arr4.json:1 (record 2): messages[1].content: empty assistant content",)),
    Case("data-format-mismatch", lambda env: train(
        f"data.train_files=[{{path: {env.jsonl('fm.jsonl', GOOD)}, format: alpaca}}]"),
         ("fm.jsonl:1: instruction:", "format is set to 'alpaca' but the record's keys look like 'openai'")),
    Case("data-mixed-formats", on_data("mx.jsonl", GOOD, {"instruction": "a", "output": "b"}),
         ("mx.jsonl:2: record is in 'alpaca' format but the file's first record is 'openai'",)),
    Case("data-unknown-format", on_data("uf.jsonl", {"prompt": "a", "completion": "b"}),
         ("uf.jsonl:1: cannot tell the record's format from its keys (completion, prompt)",)),
    Case("data-catalog-unknown-name", lambda env: train(
        f"data.train_files=[{env.file('reg/dataset_info.json', json.dumps({'a': {'file_name': 'a.jsonl'}}))}"
        "#zzz]"),
         ("dataset_info.json", "no dataset 'zzz' in the catalog")),
]  # fmt: skip

MODEL_CASES = [
    Case("model-path-missing", lambda env: train(f"model.name_or_path={env.tmp / 'no-model'}"),
         ("model.name_or_path: '{tmp}/no-model' does not exist",)),
    Case("model-path-is-a-file", lambda env: train(f"model.name_or_path={env.file('model.txt', 'x')}"),
         ("model.name_or_path: '{tmp}/model.txt' is a file but not a .gguf model",)),
    Case("model-no-config", on_model("noconfig"), ("model.name_or_path:", "(no config.json)")),
    Case("model-no-weights", on_model("noweights"),
         ("model.name_or_path:", "has config.json but no weight files")),
    Case("model-no-tokenizer", on_model("notok"), ("model.name_or_path:", "notok' holds no tokenizer",
                                                  "set model.tokenizer")),
    Case("model-broken-tokenizer", on_model("badtok"), ("model.name_or_path:", "badtok' cannot be loaded")),
    Case("model-tokenizer-dir-missing", on_model("good", "model.tokenizer=/nonexistent/tok"),
         ("model.tokenizer: '/nonexistent/tok' is not a directory",)),
    Case("model-vocab-mismatch", on_model("smallvocab"),
         ("model.name_or_path: the tokenizer in", "has 300 tokens but the model's embedding has 200 rows")),
    Case("model-vocab-mismatch-separate-tokenizer", lambda env: train(
        f"model.name_or_path={env.models['smallvocab']}", f"model.tokenizer={env.models['good']}",
        "trainer.max_seq_len=32"),
         ("model.tokenizer: the tokenizer in", "has 300 tokens but the model's embedding has 200 rows")),
    Case("model-seq-len-beyond-positions", on_model("good", "trainer.max_seq_len=128"),
         ("trainer.max_seq_len: 128 exceeds the model's max_position_embeddings (64)", "model.rope_scaling")),
    Case("model-seq-len-beyond-rope", on_model("good", "trainer.max_seq_len=256",
                                               "model.rope_scaling={type: linear, factor: 2}"),
         ("trainer.max_seq_len: 256 exceeds the model's max_position_embeddings (64) x "
          "model.rope_scaling.factor (2) = 128",)),
]  # fmt: skip

RUN_CASES = [
    Case("output-dir-holds-different-run", _different_run,
         ("trainer.output_dir: '{tmp}/out' holds a different run (config hash", "--overwrite")),
    Case("output-dir-unrelated-files", _unrelated_dir,
         ("trainer.output_dir: '{tmp}/out' is not empty and holds no tuneforge run", "--overwrite")),
    Case("output-dir-is-a-file", lambda env: train(f"trainer.output_dir={env.file('out.txt', 'x')}"),
         ("trainer.output_dir: '{tmp}/out.txt' is a file, not a directory",)),
    Case("tracking-unreachable", lambda env: train("tracking.uri=http://127.0.0.1:9"),
         ("tracking.uri: cannot reach the MLflow tracking server at http://127.0.0.1:9",)),
    Case("tracking-password-redacted", lambda env: train("tracking.uri=http://bob:s3cret@127.0.0.1:9"),
         ("tracking.uri:", "http://bob:***@127.0.0.1:9")),
    Case("tracking-unknown-scheme", lambda env: train("tracking.uri=htp://127.0.0.1:5000"),
         ("tracking.uri: 'htp://127.0.0.1:5000': unknown tracking URI scheme 'htp'",)),
    Case("tracking-sqlite-dir-missing", lambda env: train(f"tracking.uri=sqlite:///{env.tmp}/no/such/dir/m.db"),
         ("tracking.uri:", "no/such/dir does not exist")),
    Case("data-validate-bad-record",
         lambda env: ["data", "validate", str(env.jsonl("v.jsonl", {"messages": [USER]}))],
         ("v.jsonl:1: messages: no assistant message",)),
    Case("data-validate-array-record",
         lambda env: ["data", "validate", str(env.file("v.json", json.dumps([GOOD, EMPTY_ANSWER])))],
         ("v.json:1 (record 2): messages[1].content: empty assistant content",)),
    Case("data-validate-bad-format-option", lambda env: ["data", "validate", "--format", "csv", "x.jsonl"],
         ("--format: unknown format 'csv'",)),
]  # fmt: skip

CASES = CONFIG_CASES + DATA_CASES + MODEL_CASES + RUN_CASES
NO_ERROR_LINE = {"data-validate-bad-record", "data-validate-array-record"}  # a report (stdout), then exit 1


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny local HF model (300-token tokenizer, 64 positions) and broken variants of it."""
    from tuneforge.config import TinyModelConfig
    from tuneforge.models.factory import build_tiny_model
    from tuneforge.models.io import save_hf
    from tuneforge.testing import TINY_MODEL, toy_tokenizer

    root = tmp_path_factory.mktemp("models")
    tok = toy_tokenizer()
    # TINY_MODEL with 64 positions: the max_seq_len cases need a context the job's 128 and 256 exceed.
    tiny = TinyModelConfig(**{**TINY_MODEL.model_dump(), "max_position_embeddings": 64})
    model = build_tiny_model(
        tiny, vocab_size=len(tok), seed=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    good = save_hf(model, tok, root / "good")
    dirs = {"good": good}
    for name, drop in (
        ("notok", ("tokenizer.json", "tokenizer_config.json")),
        ("noweights", ("model.safetensors",)),
        ("noconfig", ("config.json",)),
    ):
        dirs[name] = root / name
        shutil.copytree(good, dirs[name], ignore=shutil.ignore_patterns(*drop))
    dirs["badtok"] = root / "badtok"
    shutil.copytree(good, dirs["badtok"])
    (dirs["badtok"] / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    dirs["smallvocab"] = root / "smallvocab"
    shutil.copytree(good, dirs["smallvocab"])
    config = json.loads((good / "config.json").read_text())
    (dirs["smallvocab"] / "config.json").write_text(json.dumps({**config, "vocab_size": 200}))
    assert len(tok) == 300
    return dirs


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run from the repo root with a private home; Ray must not start (tripwire)."""
    import tuneforge.distributed.runner as runner

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)

    def tripwire(*args: object, **kwargs: object) -> None:
        raise ReachedRay("the bad input was not refused before Ray started")

    monkeypatch.setattr(runner, "ensure_ray", tripwire)
    from tuneforge.cli.main import app

    return app


def invoke(app, args: list[str]):
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
        pytest.fail(f"an exception escaped the CLI for {args}:\n{trace}")
    return result


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_one_clear_line(
    case: Case, cli_env, models: dict[str, Path], tmp_path: Path
) -> None:
    args = case.make(Env(tmp_path, models))
    started = time.perf_counter()
    result = invoke(cli_env, args)
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output, output
    if case.id not in NO_ERROR_LINE:
        lines = error_lines(output)
        assert len(lines) == 1, output
        output = lines[0]
    for fragment in case.expect:
        assert fragment.replace("{tmp}", str(tmp_path)) in output, output
    assert time.perf_counter() - started < 60, "a refusal must be fast"


def test_catalogue_is_complete() -> None:
    """At least 40 distinct bad inputs, each id unique."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40, len(ids)


def test_unreachable_tracking_server_fails_within_seconds() -> None:
    """No MLflow retry loop: a closed port is refused in well under MLflow's minutes of backoff."""
    from tuneforge.config import ConfigError
    from tuneforge.tracking.preflight import check_tracking_uri

    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"tracking.uri: cannot reach .* http://u:\*\*\*@127.0.0.1:9"):
        check_tracking_uri("http://u:pw@127.0.0.1:9")
    assert time.perf_counter() - started < 10
    check_tracking_uri("sqlite:///" + str(REPO / ".tuneforge-unused.db"))  # a creatable sqlite file passes


def test_output_dir_same_config_or_overwrite_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.config import ConfigError, load_config, save_config
    from tuneforge.config.preflight import check_output_dir

    monkeypatch.chdir(REPO)
    job = load_config(TINY)
    run_dir = tmp_path / "run"
    check_output_dir(job, run_dir)  # new
    run_dir.mkdir()
    check_output_dir(job, run_dir)  # empty
    save_config(job, run_dir / "job.yaml")
    check_output_dir(job, run_dir)  # the same config reuses its directory
    other = load_config(TINY, ["trainer.lr=0.5"])
    with pytest.raises(ConfigError, match="holds a different run"):
        check_output_dir(other, run_dir)
    check_output_dir(other, run_dir, overwrite=True)
    secret = load_config(TINY, ["tracking.uri=sqlite:////tmp/x.db", "tracking.experiment=e"])
    save_config(secret, run_dir / "job.yaml")
    check_output_dir(secret, run_dir)  # compared as saved (secrets masked alike)


def test_overwrite_flag_gets_past_the_output_dir_check(cli_env, tmp_path: Path) -> None:
    """``--overwrite`` reaches the next stage (the Ray tripwire), where without it the run is refused."""
    from tuneforge.config import load_config, save_config

    out = tmp_path / "out"
    save_config(load_config(REPO / TINY, ["trainer.lr=0.5"]), out / "job.yaml")
    args = train(f"trainer.output_dir={out}", "registry.model_name=null", "registry.promote=false")
    assert "holds a different run" in invoke(cli_env, args).output
    result = CliRunner().invoke(cli_env, [*args[:1], "--overwrite", *args[1:]])
    assert isinstance(result.exception, ReachedRay), result.output


def test_cluster_fit_messages() -> None:
    """The worker-group check, without a cluster: what was asked vs what the cluster has."""
    from tuneforge.config import config_from_dict
    from tuneforge.distributed.preflight import fit_problem, local_num_cpus

    def job(**d: object):
        return config_from_dict({"data": {"train_files": ["x.jsonl"]}, "distributed": d})

    big = job(num_workers=16, cpus_per_worker=0.5)
    assert local_num_cpus(big, cores=2) == 4  # at most 2x the cores, never "whatever was asked"
    assert local_num_cpus(job(num_workers=2, cpus_per_worker=0.5), cores=2) == 2
    assert local_num_cpus(job(num_workers=2, cpus_per_worker=1), cores=2) == 3
    msg = fit_problem(big, {"CPU": 4.0}, [{"CPU": 4.0}], local=True)
    assert msg and "distributed.num_workers=16 x distributed.cpus_per_worker=0.5" in msg
    assert "= 9 CPUs, but this machine's local Ray instance has 4" in msg
    small = job(num_workers=2, cpus_per_worker=0.5)
    assert fit_problem(small, {"CPU": 2.0}, [{"CPU": 2.0}], local=True) is None
    wide = fit_problem(job(num_workers=2, cpus_per_worker=8), {"CPU": 32.0}, [{"CPU": 4.0}] * 8, local=False)
    assert wide and "largest node has 4 CPUs" in wide
    four_gpus = job(num_workers=4, use_gpu=True)
    gpu = fit_problem(four_gpus, {"CPU": 64.0, "GPU": 2.0}, [{"CPU": 64.0}], local=False)
    assert gpu and "needs 4 GPUs, but the cluster has 2" in gpu


def test_worker_group_start_timeout_is_one_line() -> None:
    """Ray Train's bounded wait ends in our message, not a traceback."""
    import typer

    from tuneforge.cli.errors import user_errors

    try:
        from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
        from ray.train.v2.api.exceptions import ControllerError
    except ImportError:
        pytest.skip("Ray Train v2 internals moved")
    seen: list[str] = []

    def fail(message: str) -> None:
        seen.append(message)
        raise typer.Exit(1)

    with pytest.raises(typer.Exit), user_errors(fail):
        raise ControllerError(WorkerGroupStartupTimeoutError(num_workers=16))
    assert seen and seen[0].startswith("distributed: the worker group (16 workers) could not be placed")


def test_trainer_bounds_worker_group_start() -> None:
    """A worker group that cannot start is retried a bounded number of times (Ray's default: forever)."""
    from tuneforge.distributed.preflight import START_RETRIES

    source = (REPO / "platform/tuneforge/distributed/trainer_factory.py").read_text()
    assert "controller_failure_limit=START_RETRIES" in source and START_RETRIES >= 0


@pytest.mark.integration
def test_workers_beyond_the_machine_fail_fast(tmp_path: Path) -> None:
    """16 workers x 0.5 CPU on a small machine: refused after Ray starts, not a wait forever."""
    cores = os.cpu_count() or 1
    workers = int(cores * 2 / 0.5) + 2  # beyond the local instance's 2x oversubscription
    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path), "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    args = [EXE, "train", TINY, f"distributed.num_workers={workers}", "distributed.cpus_per_worker=0.5",
            "registry.model_name=null", "registry.promote=false"]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert f"distributed: distributed.num_workers={workers} x distributed.cpus_per_worker=0.5" in out.stderr
    assert "local Ray instance has" in out.stderr
    assert time.perf_counter() - started < 150
