"""Tests for tuneforge.tune: YAML -> checked space -> Tune domains -> trial overrides -> JobConfig.

Sampling goes through Tune's own variant generator (no cluster): what is tested is what trials get.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.search.sample import Categorical, Float, Integer
from ray.tune.search.variant_generator import generate_variants

from tuneforge.config import OVERRIDE_SOURCE, ConfigError, JobConfig, config_from_dict
from tuneforge.tune import (
    DOMAIN_KINDS,
    Domain,
    SweepConfig,
    apply_overrides,
    load_sweep,
    parse_space,
    resolve_trial_config,
    searchable_keys,
)
from tuneforge.tune.config import evaluations_per_trial
from tuneforge.tune.domains import (
    build_param_space,
    build_scheduler,
    build_search_alg,
    to_tune,
)
from tuneforge.tune.space import resolve_mix

REPO = Path(__file__).resolve().parents[3]
JOB = """\
data:
  train_files: [editor.jsonl, instruct.jsonl]
method: {name: lora, r: 16, alpha: 32, dropout: 0.1}
trainer: {max_steps: 30, eval_every: 10, lr: 1.0e-3}
"""


def write(tmp_path: Path, search: str, job: str = JOB) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(job + search, encoding="utf-8")
    return path


def sweep_error(path: Path, overrides: list[str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_sweep(path, overrides or [])
    return info.value


def line_of(path: Path, needle: str, after: str = "search:") -> int:
    """1-based line of the first line containing ``needle``, searched from the ``after`` line on."""
    lines = path.read_text().splitlines()
    start = next((i for i, text in enumerate(lines) if after in text), 0)
    for number, text in enumerate(lines[start:], start + 1):
        if needle in text:
            return number
    raise AssertionError(needle)


def base_job() -> JobConfig:
    return config_from_dict(
        {
            "data": {"train_files": ["editor.jsonl", "instruct.jsonl"]},
            "method": {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.1},
            "trainer": {"max_steps": 30, "eval_every": 10},
        }
    )


def sample(param_space: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n trial configs drawn by Tune's own generator (grid points expand, as in BasicVariantGenerator)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        out.extend(spec for _, spec in generate_variants(param_space, random_state=rng))
    return out


BRANCHES = """\
search:
  num_samples: 12
  scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
  space:
    method:
      - {name: lora, r: {choice: [4, 8, 16]}, alpha: {choice: [8, 16, 32]}}
      - name: prompt_tuning
        num_virtual_tokens: {choice: [8, 16, 32]}
        trainer.lr: {loguniform: [1.0e-2, 1.0e-1]}
      - {name: freeze, train_top_layers: {randint: [1, 4]}}
      - full
    trainer.lr: {loguniform: [1e-5, 1e-3]}
    trainer: {warmup_steps: {quniform: [0, 10, 5]}, weight_decay: {uniform: [0.0, 0.1]}}
    distributed.zero_stage: {grid: [2, 3]}
    trainer.max_seq_len: 128
    mix: {editor: {uniform: [0.2, 0.8]}, instruct: rest}
"""


# ------------------------------------------------------------------------------------------ domains


def test_every_domain_kind_parses_and_maps_to_tune(tmp_path: Path) -> None:
    job, sweep = load_sweep(write(tmp_path, BRANCHES))
    space = sweep.search_space()
    assert space.params["trainer.lr"] == Domain("loguniform", (1e-5, 1e-3))
    assert space.params["trainer.warmup_steps"] == Domain("quniform", (0.0, 10.0, 5))
    assert space.params["trainer.weight_decay"] == Domain("uniform", (0.0, 0.1))
    assert space.params["distributed.zero_stage"] == Domain("grid", (2, 3))
    assert space.params["trainer.max_seq_len"] == 128  # a constant
    freeze = next(b for b in space.branches if b.name == "freeze")
    assert freeze.knobs["train_top_layers"] == Domain("randint", (1, 4))
    kinds = {d.kind for _, d in space.domains()}
    assert kinds == set(DOMAIN_KINDS)

    ps = build_param_space(sweep, job)
    assert isinstance(ps["trainer.lr"], Float)
    assert isinstance(ps["method[freeze].train_top_layers"], Integer)
    assert ps["method[freeze].train_top_layers"].upper == 5  # inclusive YAML bound 4 -> Tune's exclusive 5
    assert isinstance(ps["method"], Categorical)
    assert ps["distributed.zero_stage"] == {"grid_search": [2, 3]}
    assert ps["trainer.max_seq_len"] == 128
    assert ps["data.mix.instruct"] == "rest"


def test_sampled_values_respect_ranges_and_inclusive_randint(tmp_path: Path) -> None:
    job, sweep = load_sweep(write(tmp_path, BRANCHES))
    configs = [resolve_trial_config(c) for c in sample(build_param_space(sweep, job), 200, seed=7)]
    assert len(configs) >= 200
    top_layers = Counter()
    for cfg in configs:
        name = cfg["method.name"]
        if name == "prompt_tuning":
            assert 1e-2 <= cfg["trainer.lr"] <= 1e-1  # the branch's own lr wins over the global one
        else:
            assert 1e-5 <= cfg["trainer.lr"] <= 1e-3
        assert cfg["trainer.warmup_steps"] in (0.0, 5.0, 10.0)
        assert 0.0 <= cfg["trainer.weight_decay"] <= 0.1
        assert cfg["distributed.zero_stage"] in (2, 3)
        assert cfg["trainer.max_seq_len"] == 128
        if name == "freeze":
            top_layers[cfg["method.train_top_layers"]] += 1
    assert set(top_layers) == {1, 2, 3, 4}  # both ends of randint [1, 4] occur, nothing outside


def test_branch_knobs_only_appear_with_their_branch(tmp_path: Path) -> None:
    job, sweep = load_sweep(write(tmp_path, BRANCHES))
    knobs = {
        "lora": {"method.r", "method.alpha"},
        "prompt_tuning": {"method.num_virtual_tokens"},
        "freeze": {"method.train_top_layers"},
        "full": set(),
    }
    seen = Counter()
    for sampled in sample(build_param_space(sweep, job), 200, seed=1):
        cfg = resolve_trial_config(sampled)
        name = cfg["method.name"]
        seen[name] += 1
        assert list(cfg)[0] == "method.name"
        assert {k for k in cfg if k.startswith("method.")} - {"method.name"} == knobs[name]
        assert not any("[" in k for k in cfg)
        trial = apply_overrides(job, cfg)  # every sampled trial is a valid job
        assert trial.method.name == name
        if name == "lora":
            assert trial.method.r in (4, 8, 16) and trial.method.alpha in (8, 16, 32)
            assert trial.method.dropout == 0.1  # same method as the base: unsearched knobs are kept
    assert set(seen) == set(knobs)  # every branch is drawn


def test_grid_searcher_enumerates_branches_without_duplicates(tmp_path: Path) -> None:
    search = """\
search:
  searcher: grid
  num_samples: 1
  space:
    method:
      - {name: lora, r: {grid: [4, 8]}, alpha: {choice: [8, 16]}}
      - full
    trainer.lr: {choice: [1.0e-3, 3.0e-3]}
"""
    job, sweep = load_sweep(write(tmp_path, search))
    ps = build_param_space(sweep, job)
    assert ps["trainer.lr"] == {"grid_search": [1e-3, 3e-3]}  # grid searcher: choice -> grid
    variants = [resolve_trial_config(spec) for _, spec in generate_variants(ps, random_state=0)]
    keys = sorted(tuple(sorted(v.items())) for v in variants)
    assert len(keys) == len(set(keys)) == (2 * 2 + 1) * 2  # lora r x alpha, plus full; x 2 lrs
    assert all(set(v) == {"method.name", "trainer.lr"} for v in variants if v["method.name"] == "full")


def test_layout_is_what_optuna_can_convert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run Ray's own OptunaSearch.convert_search_space on the layout, with a stand-in for optuna."""
    from ray.tune.search.optuna import optuna_search

    class Dist:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs

    fake = types.SimpleNamespace(
        distributions=types.SimpleNamespace(
            BaseDistribution=Dist, FloatDistribution=Dist, IntDistribution=Dist, CategoricalDistribution=Dist
        )
    )
    monkeypatch.setattr(optuna_search, "ot", fake)
    search = BRANCHES.replace("distributed.zero_stage: {grid: [2, 3]}", "distributed.zero_stage: 2")
    job, sweep = load_sweep(write(tmp_path, search), ["search.searcher=optuna"])
    converted = optuna_search.OptunaSearch.convert_search_space(build_param_space(sweep, job))
    assert converted["method"].args == (["lora", "prompt_tuning", "freeze", "full"],)
    assert converted["method[freeze].train_top_layers"].args == (1, 4)  # inclusive in Optuna too
    assert converted["trainer.lr"].kwargs == {"log": True}


def test_constant_only_space_and_single_branch(tmp_path: Path) -> None:
    job, sweep = load_sweep(write(tmp_path, "search:\n  space:\n    method: [{name: lora, r: 4}]\n"))
    ps = build_param_space(sweep, job)
    assert ps["method"] == "lora"
    (spec,) = sample(ps, 1)
    cfg = resolve_trial_config(spec)
    assert cfg == {"method.name": "lora", "method.r": 4}
    assert apply_overrides(job, cfg).method.r == 4


# ------------------------------------------------------------------------------------------ data mix


def test_mix_rest_resolves_to_weights_summing_to_one(tmp_path: Path) -> None:
    job, sweep = load_sweep(write(tmp_path, BRANCHES))
    for sampled in sample(build_param_space(sweep, job), 50, seed=3):
        cfg = resolve_trial_config(sampled)
        editor, instruct = cfg["data.mix.editor"], cfg["data.mix.instruct"]
        assert 0.2 <= editor <= 0.8
        assert editor + instruct == pytest.approx(1.0)
        trial = apply_overrides(job, cfg)
        assert [s.weight for s in trial.data.train_files] == [editor, instruct]


def test_resolve_mix() -> None:
    assert resolve_mix({"a": 0.25, "b": "rest"}) == {"a": 0.25, "b": 0.75}
    assert resolve_mix({"a": 1.0, "b": 3.0}) == {"a": 0.25, "b": 0.75}  # no rest: relative shares
    with pytest.raises(ConfigError, match="leaving nothing for 'c'"):
        resolve_mix({"a": 0.7, "b": 0.4, "c": "rest"})
    with pytest.raises(ConfigError, match="positive"):
        resolve_mix({"a": 0.0, "b": "rest"})


@pytest.mark.parametrize(
    ("mix", "needle", "message"),
    [
        (["editor: 0.3", "instruct: 0.2", "x: rest"], "x: rest", "no train file is called 'x'"),
        (["editor: 1.2", "instruct: rest"], "instruct: rest", "fixed shares sum to 1.2"),
        (
            ["editor: {uniform: [0.2, 1.0]}", "instruct: rest"],
            "instruct: rest",
            "can sum to 1 (upper bounds)",
        ),
        (["editor: rest", "instruct: rest"], "instruct: rest", "only one share can be 'rest'"),
        (
            ["editr: 0.5", "instruct: rest"],
            "editr",
            "no train file is called 'editr'; did you mean 'editor'?",
        ),
        (["editor: 0.5"], "editor: 0.5", "every train file needs a share (or 'rest'); missing: "),
        (["editor: {uniform: [0.0, 0.5]}", "instruct: rest"], "editor", "positive numbers only"),
        (["editor: -1", "instruct: rest"], "editor", "a share is a positive number"),
    ],
)
def test_mix_errors(tmp_path: Path, mix: list[str], needle: str, message: str) -> None:
    path = write(tmp_path, "search:\n  space:\n    mix:\n" + "".join(f"      {line}\n" for line in mix))
    error = sweep_error(path)
    assert message in error.message, str(error)
    assert error.file == str(path)
    assert error.line == line_of(path, needle), str(error)
    assert error.field is not None and error.field.startswith("search.space.mix"), str(error)


def test_mix_matches_catalog_name_and_file_name(tmp_path: Path) -> None:
    job = "data:\n  train_files:\n    - {path: cat/dataset_info.json, name: alpaca}\n    - b/chat.v2.jsonl\n"
    _, sweep = load_sweep(
        write(tmp_path, "search:\n  space:\n    mix: {alpaca: 0.3, chat.v2: rest}\n", job=job)
    )
    assert sweep.search_space().mix == {"alpaca": 0.3, "chat.v2": "rest"}


# ------------------------------------------------------------------------------------------ overrides


def test_apply_overrides_switches_method_and_drops_its_knobs() -> None:
    job = base_job()
    full = apply_overrides(job, {"method.name": "full"})
    assert full.method.model_dump(exclude_defaults=True) == {}  # lora's r/alpha are gone
    assert full.method.name == "full" and not hasattr(full.method, "r")
    prompt = apply_overrides(job, {"method.num_virtual_tokens": 16, "method.name": "prompt_tuning"})
    assert prompt.method.name == "prompt_tuning" and prompt.method.num_virtual_tokens == 16
    assert not hasattr(prompt.method, "r")
    qlora = apply_overrides(job, {"method.name": "qlora"})  # another method: its defaults, not the base's r
    assert qlora.method.r == 8
    assert job.method.r == 16  # the base job is not modified


def test_apply_overrides_revalidates_and_names_the_key() -> None:
    job = base_job()
    with pytest.raises(ConfigError) as info:
        apply_overrides(job, {"trainer.lr": -1.0})
    assert info.value.field == "trainer.lr" and "greater than 0" in info.value.message
    with pytest.raises(ConfigError) as info:
        apply_overrides(job, {"trainer.lrr": 1e-3})
    assert info.value.field == "trainer.lrr" and "did you mean 'trainer.lr'?" in info.value.message
    with pytest.raises(ConfigError) as info:
        apply_overrides(job, {"method.name": "full", "method.r": 8})
    assert info.value.field == "method.r" and "unknown key for method 'full'" in info.value.message
    with pytest.raises(ConfigError, match="no train file is called 'nope'"):
        apply_overrides(job, {"data.mix.nope": 0.5, "data.mix.editor": 0.5})


def test_apply_overrides_creates_optional_sections_and_resolves_paths(tmp_path: Path) -> None:
    job = base_job()
    trial = apply_overrides(
        job,
        {
            "trainer.early_stopping.patience": 3,
            "model.rope_scaling.type": "linear",
            "model.rope_scaling.factor": 2.0,
        },
    )
    assert trial.trainer.early_stopping is not None and trial.trainer.early_stopping.patience == 3
    assert trial.model.rope_scaling is not None and trial.model.rope_scaling.factor == 2.0
    (tmp_path / "other.jsonl").write_text("")
    moved = apply_overrides(job, {"data.train_files": ["other.jsonl"]}, config_dir=tmp_path)
    assert moved.data.train_files[0].path == str(tmp_path / "other.jsonl")


def test_resolve_trial_config_turns_numpy_into_python() -> None:
    cfg = resolve_trial_config({"trainer.lr": np.float64(0.5), "trainer.max_steps": np.int64(3)})
    assert cfg == {"trainer.lr": 0.5, "trainer.max_steps": 3}
    assert type(cfg["trainer.lr"]) is float and type(cfg["trainer.max_steps"]) is int


def test_searchable_keys_cover_nested_and_optional_sections() -> None:
    keys = set(searchable_keys())
    for key in (
        "trainer.lr",
        "model.tiny.hidden_size",
        "trainer.early_stopping.patience",
        "model.rope_scaling.factor",
        "method.r",
        "method.num_virtual_tokens",
        "distributed.zero_stage",
    ):
        assert key in keys


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("search", "needle", "field", "message"),
    [
        (
            "search:\n  num_sample: 3\n  space: {trainer.lr: 0.1}\n",
            "num_sample",
            "search.num_sample",
            "unknown key; did you mean 'num_samples'?",
        ),
        (
            "search:\n  scheduler: {name: ashaa}\n  space: {trainer.lr: 0.1}\n",
            "ashaa",
            "search.scheduler.name",
            "unknown scheduler 'ashaa'; did you mean 'asha'?",
        ),
        (
            "search:\n  scheduler: {name: asha, grace: 1}\n  space: {trainer.lr: 0.1}\n",
            "grace",
            "search.scheduler.grace",
            "unknown key for scheduler 'asha'; did you mean 'grace_period'?",
        ),
        (
            "search:\n  direction: maximum\n  space: {trainer.lr: 0.1}\n",
            "maximum",
            "search.direction",
            "'min' or 'max'",
        ),
        ("search:\n  metric: eval_loss\n", "search:", "search.space", "required key is missing"),
        (
            "search:\n  space:\n    trainer.lrr: {choice: [1, 2]}\n",
            "trainer.lrr",
            "search.space.trainer.lrr",
            "did you mean 'trainer.lr'?",
        ),
        (
            "search:\n  space:\n    trainer:\n      lrr: 0.1\n",
            "lrr",
            "search.space.trainer.lrr",
            "did you mean 'trainer.lr'?",
        ),
        (
            "search:\n  space:\n    trainr.lr: 0.1\n",
            "trainr",
            "search.space.trainr.lr",
            "did you mean 'trainer.lr'?",
        ),
        (
            "search:\n  space:\n    trainer.lr: {min: 1}\n",
            "trainer.lr",
            "search.space.trainer.lr.min",
            "trainer.lr is a single value, not a section",
        ),
        (
            "search:\n  space:\n    trainer.lr: {uniform: [0.1, 0.01]}\n",
            "trainer.lr",
            "search.space.trainer.lr.uniform",
            "uniform needs low < high",
        ),
        (
            "search:\n  space:\n    trainer.lr: {loguniform: [0, 0.1]}\n",
            "trainer.lr",
            "search.space.trainer.lr.loguniform",
            "loguniform needs low > 0",
        ),
        (
            "search:\n  space:\n    trainer.lr: {uniform: 0.1}\n",
            "trainer.lr",
            "search.space.trainer.lr.uniform",
            "uniform takes [low, high] as numbers",
        ),
        (
            "search:\n  space:\n    trainer.max_steps: {randint: [1.5, 4]}\n",
            "max_steps",
            "search.space.trainer.max_steps.randint",
            "integer bounds",
        ),
        (
            "search:\n  space:\n    trainer.lr: {quniform: [0.1, 0.95, 0.2]}\n",
            "trainer.lr",
            "search.space.trainer.lr.quniform",
            "bounds must be multiples of q",
        ),
        (
            "search:\n  space:\n    trainer.lr: {choice: [1, 2], grid: [3]}\n",
            "trainer.lr",
            "search.space.trainer.lr",
            "a domain is a mapping with one key",
        ),
        (
            "search:\n  space:\n    trainer.lr: {choice: []}\n",
            "trainer.lr",
            "search.space.trainer.lr.choice",
            "non-empty list",
        ),
        (
            "search:\n  space:\n    trainer.lr: {choice: [0.1, -1]}\n",
            "trainer.lr",
            "search.space.trainer.lr",
            "value -1 of choice: input should be greater than 0",
        ),
        (
            "search:\n  space:\n    distributed.zero_stage: {randint: [2, 4]}\n",
            "zero_stage",
            "search.space.distributed.zero_stage",
            "value 4 of randint",
        ),
        (
            "search:\n  space:\n    method:\n      - {name: lora, rr: 4}\n",
            "rr",
            "search.space.method[0].rr",
            "unknown key for method 'lora'; did you mean 'r'?",
        ),
        (
            "search:\n  space:\n    method:\n      - {name: lorra}\n",
            "lorra",
            "search.space.method[0].name",
            "unknown method 'lorra'; did you mean 'lora'?",
        ),
        (
            "search:\n  space:\n    method:\n      - {r: 4}\n",
            "r: 4",
            "search.space.method[0]",
            "required key 'name' is missing",
        ),
        (
            "search:\n  space:\n    method:\n      - {name: {choice: [lora, full]}}\n",
            "name:",
            "search.space.method[0].name",
            "name is fixed per branch",
        ),
        (
            "search:\n  space:\n    method:\n      - {name: lora, r: {choice: [0, 4]}}\n",
            "r:",
            "search.space.method[0].r",
            "value 0 of choice: input should be greater than or equal to 1",
        ),
        (
            "search:\n  space:\n    method:\n      - freeze\n",
            "freeze",
            "search.space.method[0]",
            "freeze trains nothing",
        ),
        (
            "search:\n  space:\n    method: [full]\n    method.r: 4\n",
            "method.r",
            "search.space.method.r",
            "method is searched as branches (line",
        ),
        (
            "search:\n  space:\n    trainer.lr: 0.1\n    trainer: {lr: 0.2}\n",
            "lr: 0.2",
            "search.space.trainer.lr",
            "trainer.lr is set twice (also line",
        ),
        (
            "search:\n  space:\n    model.tiny: {choice: [{hidden_size: 64}]}\n"
            "    model.tiny.vocab_size: 512\n",
            "model.tiny:",
            "search.space.model.tiny",
            "set as a whole and also through model.tiny.vocab_size",
        ),
        (
            "search:\n  searcher: optuna\n  space:\n    trainer.lr: {grid: [0.1, 0.2]}\n",
            "trainer.lr",
            "search.space.trainer.lr",
            "grid needs searcher random or grid",
        ),
        (
            "search:\n  searcher: optuna\n  space:\n    data.train_files: {choice: [[a.jsonl], [b.jsonl]]}\n",
            "train_files",
            "search.space.data.train_files",
            "only choose among scalar values",
        ),
        (
            "search:\n  space:\n    method:\n      - {name: lora, r: {grid: [4, 8]}}\n",
            "r:",
            "search.space.method[0].r",
            "grid inside a method branch needs searcher: grid",
        ),
        (
            "search:\n  space:\n    method.name: {choice: [full, lora]}\n    method.r: 4\n",
            "method.r",
            "search.space.method.r",
            "method knobs belong in branches",
        ),
        (
            "search:\n  space:\n    trainer.max_steps: {uniform: [10, 20]}\n",
            "max_steps",
            "search.space.trainer.max_steps",
            "uniform gives fractional values like 13.71; use randint",
        ),
        ("search:\n  space: {}\n", "space", "search.space", "nothing to search"),
    ],
)
def test_sweep_errors_name_file_line_and_field(
    tmp_path: Path, search: str, needle: str, field: str, message: str
) -> None:
    path = write(tmp_path, search)
    error = sweep_error(path)
    assert error.file == str(path), str(error)
    assert error.field == field, str(error)
    assert message in error.message, str(error)
    assert error.line == line_of(path, needle), str(error)
    assert str(error).startswith(f"{path}:{error.line}: {field}: ")


def test_missing_or_misspelt_search_section(tmp_path: Path) -> None:
    error = sweep_error(write(tmp_path, ""))
    assert "no 'search:' section" in error.message
    path = write(tmp_path, "serch:\n  space: {trainer.lr: 0.1}\n")
    error = sweep_error(path)
    assert (error.field, error.line) == ("serch", line_of(path, "serch"))
    assert "did you mean 'search'?" in error.message


def test_job_errors_still_point_into_the_sweep_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "search:\n  space: {trainer.lr: 0.1}\n", job=JOB.replace("eval_every", "eval_evry")
    )
    error = sweep_error(path)
    assert (error.field, error.line) == ("trainer.eval_evry", line_of(path, "eval_evry", after=""))


def test_overrides_for_job_search_and_space(tmp_path: Path) -> None:
    path = write(tmp_path, BRANCHES)
    job, sweep = load_sweep(
        path,
        [
            "trainer.max_steps=10",
            "search.num_samples=3",
            "search.scheduler=fifo",
            "search.space.trainer.lr={choice: [0.1, 0.2]}",
            "search.space.trainer.warmup_steps=2",
        ],
    )
    assert job.trainer.max_steps == 10
    assert sweep.num_samples == 3 and sweep.scheduler.name == "fifo"
    space = sweep.search_space()
    assert space.params["trainer.lr"] == Domain("choice", (0.1, 0.2))
    assert space.params["trainer.warmup_steps"] == 2  # the override beats the nested file entry
    error = sweep_error(path, ["search.num_samples=0"])
    assert (error.file, error.field, error.line) == (OVERRIDE_SOURCE, "search.num_samples", None)
    error = sweep_error(path, ["search.space.trainer.lrr=0.1"])
    assert (error.file, error.field) == (OVERRIDE_SOURCE, "search.space.trainer.lrr")
    error = sweep_error(path, ["search.space={trainer.lrr: 0.1}"])  # the whole space replaced
    assert (error.file, error.field, error.line) == (OVERRIDE_SOURCE, "search.space.trainer.lrr", None)


def test_sweep_config_defaults_and_shorthand() -> None:
    sweep = SweepConfig.model_validate({"scheduler": "asha", "space": {"trainer.lr": {"choice": [0.1]}}})
    assert sweep.scheduler.name == "asha" and sweep.scheduler.grace_period == 1
    assert (sweep.metric, sweep.direction, sweep.searcher) == ("eval_loss", "min", "random")
    assert sweep.search_space().params == {"trainer.lr": Domain("choice", (0.1,))}
    with pytest.raises(ValueError, match="grace_period"):
        SweepConfig.model_validate(
            {"scheduler": {"name": "asha", "grace_period": 5, "max_t": 3}, "space": {}}
        )


def test_parse_space_without_job_checks_keys_but_not_values() -> None:
    space = parse_space({"trainer": {"lr": {"choice": [-1]}}})  # a value error needs the job to see
    assert space.params == {"trainer.lr": Domain("choice", (-1,))}
    with pytest.raises(ConfigError, match="did you mean 'trainer.lr'"):
        parse_space({"trainer.lrr": 1})
    with pytest.raises(ConfigError, match="no train file"):
        parse_space({"trainer.lr": {"choice": [1]}, "mix": {"x": 0.5, "y": "rest"}}, job=base_job())


# ------------------------------------------------------------------------------------------ Tune objects


def test_scheduler_and_search_alg(tmp_path: Path) -> None:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    job, sweep = load_sweep(write(tmp_path, BRANCHES), ["search.max_concurrent_trials=2"])
    assert evaluations_per_trial(job) == 3  # evals at 10 and 20, plus the final one at 30
    assert isinstance(build_scheduler(sweep, job), AsyncHyperBandScheduler)
    with pytest.raises(ConfigError, match="asha needs max_t"):
        build_scheduler(sweep)
    fifo = SweepConfig.model_validate({**sweep.model_dump(), "scheduler": "fifo"})
    assert isinstance(build_scheduler(fifo, job), FIFOScheduler)
    search_alg = build_search_alg(sweep, seed=0)
    assert isinstance(search_alg, BasicVariantGenerator) and search_alg.max_concurrent == 2


def test_optuna_searcher_without_the_package_is_a_config_error(tmp_path: Path) -> None:
    import ray.tune.search.optuna  # noqa: F401  (Ray ships the wrapper; only the optuna package may be absent)

    try:
        import optuna  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("optuna is installed")
    search = BRANCHES.replace("distributed.zero_stage: {grid: [2, 3]}", "distributed.zero_stage: 2")
    _, sweep = load_sweep(write(tmp_path, search), ["search.searcher=optuna"])
    with pytest.raises(ConfigError, match="needs the optuna package"):
        build_search_alg(sweep)


def test_to_tune_quniform_values_are_multiples_within_bounds() -> None:
    domain = to_tune(Domain("quniform", (0.2, 0.8, 0.2)))
    values = domain.sample(size=300, random_state=np.random.default_rng(0))
    assert set(np.round(values, 9)) == {0.2, 0.4, 0.6, 0.8}


# ------------------------------------------------------------------------------------------ repo


def test_demo_sweep_loads_and_uses_existing_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    job, sweep = load_sweep(REPO / "jobs/configs/sweep/tiny_cpu.yaml")
    space = sweep.search_space()
    names = [b.name for b in space.branches]
    assert len(set(names)) >= 3 and {"full", "lora"} <= set(names)
    assert (job.trainer.max_steps, job.trainer.eval_every) == (30, 10)
    assert sweep.num_samples == 6 and sweep.scheduler.name == "asha" and sweep.scheduler.grace_period == 1
    assert sweep.scheduler.time_attr == "training_iteration"
    assert evaluations_per_trial(job) == 3
    for sampled in sample(build_param_space(sweep, job), 40, seed=0):
        trial = apply_overrides(job, resolve_trial_config(sampled))
        assert trial.method.name in names


def test_space_and_config_modules_do_not_import_ray() -> None:
    code = (
        "import sys, tuneforge.tune, tuneforge.tune.space, tuneforge.tune.config, tuneforge.tune.pareto\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_mix_names_mode_sources_by_their_mode(tmp_path: Path) -> None:
    """`mix: {editor: ..., instruct: rest}` over a job's `modes:` entries: the built files are named
    after their modes, so the same names match before and after the modes are compiled."""
    from tuneforge.modes.materialize import with_mode_sources

    (tmp_path / "src.txt").write_text("He go home.\nShe go out.\n")
    (tmp_path / "ref.txt").write_text("He goes home.\nShe goes out.\n")
    (tmp_path / "alpaca.jsonl").write_text('{"instruction": "Say hi", "output": "hi"}\n')
    job = (
        "data:\n  modes:\n"
        f"    - {{mode: editor, from: [{tmp_path}/src.txt, {tmp_path}/ref.txt]}}\n"
        f"    - {{mode: instruct, from: [{tmp_path}/alpaca.jsonl]}}\n"
        "trainer: {max_steps: 10, eval_every: 5}\n"
    )
    search = "search:\n  space:\n    mix: {editor: {uniform: [0.2, 0.8]}, instruct: rest}\n"
    base, sweep = load_sweep(write(tmp_path, search, job))
    built = with_mode_sources(base, tmp_path / "modes")
    cfg = resolve_trial_config(sample(build_param_space(sweep, built), 1, seed=1)[0])
    trial = apply_overrides(built, cfg)
    assert [Path(s.path).stem for s in trial.data.train_files] == ["editor", "instruct"]
    assert [s.weight for s in trial.data.train_files] == [cfg["data.mix.editor"], cfg["data.mix.instruct"]]
    assert "no train file is called 'chat'" in str(
        sweep_error(write(tmp_path, search.replace("instruct: rest", "chat: rest"), job))
    )


ISSUE_EXAMPLE = """\
search:
  metric: eval_loss
  direction: min
  num_samples: 12
  scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
  searcher: random
  space:
    method:
      - {name: lora, r: {choice: [4, 8, 16]}, alpha: {choice: [8, 16, 32]}, lr: 3.0e-3}
      - {name: prompt_tuning, num_virtual_tokens: {choice: [8, 16, 32]}}
      - {name: freeze, train_top_layers: {randint: [1, 4]}}
      - {name: full}
    lr: {loguniform: [1e-5, 1e-3]}
    mix: {editor: {uniform: [0.2, 0.8]}, instruct: rest}
"""


def test_bare_field_names_are_shorthand_for_their_section(tmp_path: Path) -> None:
    """The space exactly as people write it: ``lr`` means trainer.lr, at the top and inside a branch."""
    job, sweep = load_sweep(write(tmp_path, ISSUE_EXAMPLE))
    space = sweep.search_space(job)
    assert "trainer.lr" in space.params and "lr" not in space.params
    lora = next(b for b in space.branches if b.name == "lora")
    assert lora.knobs["trainer.lr"] == 3.0e-3
    for sampled in sample(build_param_space(sweep, job), 40, seed=3):
        trial = apply_overrides(job, resolve_trial_config(sampled))
        if trial.method.name == "lora":
            assert trial.trainer.lr == 3.0e-3  # the branch's own value wins over the global domain
        else:
            assert 1e-5 <= trial.trainer.lr <= 1e-3


def test_shorthand_typos_and_duplicates_are_errors(tmp_path: Path) -> None:
    typo = sweep_error(write(tmp_path, "search:\n  space:\n    lrr: {loguniform: [1e-5, 1e-3]}\n"))
    assert typo.field == "search.space.lrr" and "did you mean 'trainer.lr'" in typo.message
    twice = sweep_error(write(tmp_path, "search:\n  space:\n    lr: 0.1\n    trainer.lr: 0.2\n"))
    assert "set twice" in twice.message
