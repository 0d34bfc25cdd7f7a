"""Tests for tuneforge.config: YAML loading, overrides, error messages, path resolution, save/hash."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tuneforge.config import (
    OVERRIDE_SOURCE,
    ConfigError,
    FullMethod,
    JobConfig,
    LoraMethod,
    TinyModelConfig,
    config_from_dict,
    config_hash,
    field_descriptions,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "jobs" / "configs" / "finetune"
MINIMAL = "data:\n  train_files: [train.jsonl]\n"


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, overrides: list[str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or [])
    return info.value


@pytest.fixture
def minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal config in tmp_path, loaded with tmp_path as cwd."""
    monkeypatch.chdir(tmp_path)
    return write(tmp_path, MINIMAL)


def test_demo_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_config(DEMO_DIR / "tiny_cpu.yaml")
    assert isinstance(cfg.method, FullMethod)
    assert cfg.model.name_or_path is None
    assert cfg.model.tiny == TinyModelConfig()  # the demo spells out the tiny defaults
    assert [spec.path for spec in cfg.data.train_files] == [
        str(REPO / "platform/tuneforge/assets/data/tiny_chat.jsonl"),
        str(REPO / "platform/tuneforge/assets/data/tiny_alpaca.jsonl"),
    ]
    assert cfg.trainer.max_steps == 60
    assert cfg.trainer.lr == pytest.approx(3e-3)
    assert (cfg.trainer.micro_batch_size, cfg.trainer.max_seq_len, cfg.trainer.eval_every) == (8, 128, 20)
    assert (cfg.distributed.num_workers, cfg.distributed.zero_stage) == (2, 2)
    assert cfg.distributed.cpus_per_worker == 0.5
    assert cfg.tracking.experiment == "tuneforge-demo"
    assert cfg.registry.model_name == "tuneforge-tiny"


def test_demo_lora_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_config(DEMO_DIR / "tiny_cpu_lora.yaml")
    assert isinstance(cfg.method, LoraMethod)
    assert (cfg.method.r, cfg.method.alpha) == (8, 16)
    assert cfg.method.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.trainer.lr == pytest.approx(5e-3)
    assert cfg.registry.model_name == "tuneforge-tiny-lora"


def test_defaults_and_shorthands(minimal: Path) -> None:
    cfg = load_config(minimal, ["data.eval_files=eval.jsonl"])
    assert cfg.method == FullMethod()
    assert cfg.trainer.lr == 1e-3
    assert cfg.data.train_files[0].format == "auto"
    assert cfg.data.eval_files[0].path == str(minimal.parent / "eval.jsonl")


def test_file_typo_names_file_line_field_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "trainer:\n  max_steps: 3\n  lrr: 0.1\n")
    err = load_error(path)
    assert str(err) == f"{path}:5: trainer.lrr: unknown key; did you mean 'lr'?"
    assert (err.file, err.line, err.field) == (str(path), 5, "trainer.lrr")


def test_unknown_section_suggests_closest(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, MINIMAL + "trainr:\n  lr: 0.1\n"))
    assert err.line == 3
    assert str(err).endswith("trainr: unknown key; did you mean 'trainer'?")


def test_override_typo(minimal: Path) -> None:
    err = load_error(minimal, ["trainer.lrr=0.1"])
    assert str(err) == "<override>: trainer.lrr: unknown key; did you mean 'lr'?"
    assert (err.file, err.line) == (OVERRIDE_SOURCE, None)


def test_overrides_of_each_type(minimal: Path) -> None:
    cfg = load_config(
        minimal,
        [
            "trainer.lr=3e-4",
            "trainer.max_steps=1e3",
            "trainer.grad_clip=null",
            "distributed.use_gpu=true",
            "distributed.num_workers=4",
            "tracking.uri=null",
            "tracking.run_name=2024",
            "data.train_files=[a.jsonl, b.jsonl]",
            "model.tiny={hidden_size: 32, num_attention_heads: 2}",
        ],
    )
    assert cfg.trainer.lr == 3e-4
    assert cfg.trainer.max_steps == 1000
    assert cfg.trainer.grad_clip is None
    assert cfg.distributed.use_gpu is True
    assert cfg.distributed.num_workers == 4
    assert cfg.tracking.uri is None
    assert cfg.tracking.run_name == "2024"
    assert [Path(spec.path).name for spec in cfg.data.train_files] == ["a.jsonl", "b.jsonl"]
    tiny = cfg.model.tiny
    assert (tiny.hidden_size, tiny.num_attention_heads, tiny.vocab_size) == (32, 2, 512)


def test_override_later_wins(minimal: Path) -> None:
    assert load_config(minimal, ["trainer.seed=1", "trainer.seed=2"]).trainer.seed == 2


@pytest.mark.parametrize("override", ["trainer.lr", "=3", "trainer..lr=3"])
def test_malformed_override(minimal: Path, override: str) -> None:
    err = load_error(minimal, [override])
    assert err.file == OVERRIDE_SOURCE
    assert "expected dotted.key=value" in str(err)


def test_override_into_a_list_is_refused(minimal: Path) -> None:
    err = load_error(minimal, ["data.train_files.0=x.jsonl"])
    assert "data.train_files is a list" in str(err)


def test_unparsable_override_value(minimal: Path) -> None:
    err = load_error(minimal, ["data.train_files=[a.jsonl"])
    assert str(err).startswith("<override>: data.train_files: cannot parse value '[a.jsonl'")


def test_switch_method_by_override(minimal: Path) -> None:
    cfg = load_config(minimal, ["method.name=lora", "method.r=4"])
    assert isinstance(cfg.method, LoraMethod)
    assert cfg.method.r == 4
    assert cfg.method.alpha == 16


def test_switch_method_drops_knobs_of_previous_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_config(DEMO_DIR / "tiny_cpu_lora.yaml", ["method.name=full"])
    assert cfg.method == FullMethod()


def test_knob_of_other_method_names_the_method(minimal: Path) -> None:
    err = load_error(minimal, ["method.r=4"])
    assert str(err).startswith("<override>: method.r: unknown key for method 'full'")


def test_unknown_method_lists_valid_ones(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, MINIMAL + "method:\n  name: lorra\n"))
    assert (err.line, err.field) == (4, "method.name")
    assert "unknown method 'lorra'; did you mean 'lora'? expected one of: full, lora" in str(err)


def test_typo_inside_lora_method_points_at_its_line(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, MINIMAL + "method:\n  name: lora\n  rr: 4\n"))
    assert str(err).endswith(":5: method.rr: unknown key for method 'lora'; did you mean 'r'?")


def test_offload_params_needs_stage_3(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "distributed:\n  zero_stage: 2\n  offload_params: true\n")
    err = load_error(path)
    assert err.field == "distributed"
    assert err.line == 3
    assert "offload_params requires zero_stage 3 (got zero_stage 2)" in str(err)
    assert load_config(path, ["distributed.zero_stage=3"]).distributed.offload_params is True


def test_offload_optimizer_needs_zero(minimal: Path) -> None:
    err = load_error(minimal, ["distributed.zero_stage=0", "distributed.offload_optimizer=true"])
    assert "offload_optimizer requires zero_stage >= 1" in str(err)


@pytest.mark.parametrize("key", ["micro_batch_size", "grad_accum", "max_seq_len"])
def test_sizes_must_be_positive(minimal: Path, key: str) -> None:
    err = load_error(minimal, [f"trainer.{key}=0"])
    assert str(err) == f"<override>: trainer.{key}: input should be greater than or equal to 1 (got 0)"


def test_wrong_type_names_the_field(minimal: Path) -> None:
    err = load_error(minimal, ["trainer.max_steps=abc"])
    assert err.field == "trainer.max_steps"
    assert str(err).startswith("<override>: trainer.max_steps: input should be a valid integer")
    assert "'abc'" in str(err)
    assert "pydantic" not in str(err) and "\n" not in str(err)


def test_wrong_type_in_file_points_at_line(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, MINIMAL + "model:\n  dtype: fp8\n"))
    assert (err.line, err.field) == (4, "model.dtype")
    assert "(got 'fp8')" in str(err)


def test_error_inside_list_item(tmp_path: Path) -> None:
    err = load_error(
        write(tmp_path, "data:\n  train_files:\n    - a.jsonl\n    - {path: b.jsonl, weight: 0}\n")
    )
    assert (err.line, err.field) == (4, "data.train_files[1].weight")


def test_missing_required_section(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "trainer:\n  lr: 0.1\n"))
    assert (err.field, err.line) == ("data", None)
    assert "required key is missing" in str(err)


def test_further_problems_are_counted(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, MINIMAL + "trainer:\n  lrr: 1\n  seed: x\n"))
    assert str(err).endswith("(and 1 more problem)")


def test_empty_section_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "trainer:\n  # lr: 0.1\n"))
    assert cfg.trainer.lr == 1e-3


def test_tiny_model_heads_must_divide_hidden(minimal: Path) -> None:
    err = load_error(minimal, ["model.tiny.hidden_size=63"])
    assert "hidden_size (63) must be divisible by num_attention_heads (4)" in str(err)


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "data:\n  train_files: [a.jsonl\ntrainer: {}\n"))
    assert err.line is not None and err.line >= 2
    assert "invalid YAML" in str(err)


@pytest.mark.parametrize(("text", "found"), [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_top_level_must_be_mapping(tmp_path: Path, text: str, found: str) -> None:
    assert found in str(load_error(write(tmp_path, text)))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert str(load_error(path)) == f"{path}: config file not found"


def test_config_error_pickles() -> None:
    err = ConfigError("unknown key", file="x.yaml", line=3, field="trainer.lrr")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) == "x.yaml:3: trainer.lrr: unknown key"


def test_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir, cwd = tmp_path / "configs", tmp_path / "cwd"
    config_dir.mkdir()
    cwd.mkdir()
    (config_dir / "near_config.jsonl").touch()
    (config_dir / "both.jsonl").touch()
    (cwd / "both.jsonl").touch()
    (cwd / "tok").mkdir()
    path = write(
        config_dir,
        "model:\n  name_or_path: gs://bucket/model\n  tokenizer: tok\n"
        "data:\n  train_files: [near_config.jsonl, both.jsonl, missing.jsonl, s3://bucket/x.jsonl]\n",
    )
    monkeypatch.chdir(cwd)
    cfg = load_config(path)
    assert [spec.path for spec in cfg.data.train_files] == [
        str(config_dir / "near_config.jsonl"),
        str(cwd / "both.jsonl"),
        str(cwd / "missing.jsonl"),
        "s3://bucket/x.jsonl",
    ]
    assert cfg.model.name_or_path == "gs://bucket/model"
    assert cfg.model.tokenizer == str(cwd / "tok")


def test_save_load_round_trip(minimal: Path, tmp_path: Path) -> None:
    cfg = load_config(minimal, ["method.name=lora", "trainer.lr=2e-5", "data.eval_files=[e.jsonl]"])
    out = tmp_path / "run" / "config.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_config_from_dict_round_trip(minimal: Path) -> None:
    cfg = load_config(minimal, ["method.name=lora"])
    assert config_from_dict(cfg.model_dump(mode="json")) == cfg


def test_config_from_dict_raises_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"train_files": ["a"]}, "trainer": {"lr": -1}})
    assert str(info.value) == "trainer.lr: input should be greater than 0 (got -1)"


def test_config_hash(minimal: Path) -> None:
    cfg = load_config(minimal)
    digest = config_hash(cfg)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert config_hash(load_config(minimal)) == digest
    assert config_hash(config_from_dict(cfg.model_dump(mode="json"))) == digest
    assert config_hash(load_config(minimal, ["trainer.seed=43"])) != digest


def test_field_descriptions_cover_every_field() -> None:
    descriptions = field_descriptions()
    assert descriptions["trainer.lr"] == "Peak learning rate."
    assert descriptions["method.name"].startswith("One of: full, lora")
    assert "method.r" in descriptions
    assert "data.train_files[].path" in descriptions
    assert all(descriptions.values())
    assert set(JobConfig.model_fields) <= set(descriptions)


# ------------------------------------------------------------------------------------------ data section


def test_data_defaults_for_the_data_layer(minimal: Path) -> None:
    d = load_config(minimal).data
    assert (d.template, d.on_bad_record, d.dedup, d.last_turn_only) == ("auto", "error", True, False)
    assert d.train_files[0].weight is None and d.train_files[0].name is None


def test_catalog_entry_shorthand_splits_into_path_and_name(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text("{}")
    cfg = load_config(write(tmp_path, f"data:\n  train_files: ['{tmp_path}/dataset_info.json#identity']\n"))
    spec = cfg.data.train_files[0]
    assert (spec.path, spec.name) == (str(tmp_path / "dataset_info.json"), "identity")
    plain = load_config(write(tmp_path, "data:\n  train_files: ['odd#name.jsonl']\n")).data.train_files[0]
    assert plain.name is None and plain.path.endswith("odd#name.jsonl")


def test_mix_weights_are_all_or_none(tmp_path: Path) -> None:
    ok = load_config(
        write(tmp_path, "data:\n  train_files: [{path: a.jsonl, weight: 3}, {path: b.jsonl, weight: 1}]\n")
    )
    assert [s.weight for s in ok.data.train_files] == [3.0, 1.0]
    err = load_error(write(tmp_path, "data:\n  train_files: [{path: a.jsonl, weight: 3}, b.jsonl]\n"))
    assert "set weight on every file or on none" in str(err)


def test_unknown_template_and_policy_are_config_errors(minimal: Path) -> None:
    assert "vicuna" in str(load_error(minimal, ["data.template=vicuna"]))
    assert "on_bad_record" in str(load_error(minimal, ["data.on_bad_record=ignore"]))


def test_mode_sources_resolve_relative_to_the_config_file(tmp_path: Path, monkeypatch) -> None:
    """`modes[].from` paths work like train_files: a path next to the config is found from any cwd."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "src.txt").write_text("The cat sat.\n")
    cfg = tmp_path / "cfg" / "job.yaml"
    cfg.write_text("data:\n  modes:\n    - {mode: editor, from: [src.txt]}\n")
    monkeypatch.chdir(tmp_path)
    job = load_config(cfg)
    assert job.data.modes[0].sources == [str(tmp_path / "cfg" / "src.txt")]
