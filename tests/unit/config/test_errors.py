"""One explainer for job and sweep files: the same bad value reads ``file:line: field: problem`` in both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuneforge.config import OVERRIDE_SOURCE, ConfigError, load_config
from tuneforge.config.errors import unknown_key_message
from tuneforge.tune.config import load_sweep

BASE = "data:\n  train_files: [train.jsonl]\nmethod: {name: lora, r: 8}\n"
SEARCH = "  space:\n    trainer.lr: {choice: [1.0e-3, 3.0e-3]}\n"
SHAPE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>[\w.\[\]]+): (?P<message>.+)$")

# (job section, its bad key, sweep `search:` lines, their bad key, what both messages say)
CASES = {
    "unknown key": (
        "trainer:\n  lrr: 1\n",
        "trainer.lrr",
        "  metrc: eval_loss\n",
        "search.metrc",
        "did you mean",
    ),
    "key prefix": (
        "trainer:\n  grad_acc: 2\n",
        "trainer.grad_acc",
        "  num_samp: 2\n",
        "search.num_samp",
        "did you mean",
    ),
    "wrong type": (
        "trainer:\n  max_steps: lots\n",
        "trainer.max_steps",
        "  num_samples: lots\n",
        "search.num_samples",
        "(got 'lots')",
    ),
    "out of range": (
        "trainer:\n  max_steps: 0\n",
        "trainer.max_steps",
        "  num_samples: 0\n",
        "search.num_samples",
        "greater than or equal to 1 (got 0)",
    ),
    "unknown union tag": (
        "method:\n  name: lorra\n",
        "method.name",
        "  scheduler:\n    name: ashaa\n",
        "search.scheduler.name",
        "did you mean",
    ),
    "key unknown to the chosen variant": (
        "method:\n  name: lora\n  rr: 4\n",
        "method.rr",
        "  scheduler:\n    name: asha\n    grace: 2\n",
        "search.scheduler.grace",
        "unknown key for",
    ),
    "model validator": (
        "trainer:\n  warmup_steps: 5\n  warmup_ratio: 0.1\n",
        "trainer",
        "  scheduler:\n    name: asha\n    grace_period: 5\n    max_t: 2\n",
        "search.scheduler",
        "",
    ),
}


def job_error(tmp_path: Path, section: str) -> tuple[ConfigError, Path]:
    # a section given twice would be a YAML duplicate, so the bad one replaces the base's `method:`
    base = BASE.replace("method: {name: lora, r: 8}\n", "") if section.startswith("method") else BASE
    path = tmp_path / "job.yaml"
    path.write_text(base + section, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, path


def sweep_error(tmp_path: Path, search: str) -> tuple[ConfigError, Path]:
    path = tmp_path / "sweep.yaml"
    path.write_text(BASE + "search:\n" + search + SEARCH, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    return info.value, path


def expected_line(path: Path, field: str) -> int:
    """The line of the deepest key of ``field`` (``search.scheduler.grace`` -> the ``grace:`` line)."""
    key = field.rsplit(".", 1)[-1]
    text = path.read_text().splitlines()
    return next(number for number, line in enumerate(text, 1) if line.strip().startswith(f"{key}:"))


def check_shape(error: ConfigError, path: Path, field: str, fragment: str) -> re.Match[str]:
    text = str(error)
    match = SHAPE.match(text)
    assert match, text
    assert (match["file"], int(match["line"]), match["field"]) == (
        str(path),
        expected_line(path, field),
        field,
    )
    assert (error.file, error.line, error.field) == (str(path), expected_line(path, field), field)
    assert "\n" not in text and "pydantic" not in text.lower() and fragment in match["message"], text
    return match


@pytest.mark.parametrize("case", CASES)
def test_job_and_sweep_explain_the_same_problem_alike(tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    job_section, job_field, search, sweep_field, fragment = CASES[case]
    job_match = check_shape(*job_error(tmp_path, job_section), job_field, fragment)
    sweep_match = check_shape(*sweep_error(tmp_path, search), sweep_field, fragment)
    # same kind of problem, same words (up to the names of the keys, sections and values involved)
    if fragment:  # a model validator's message is its own
        assert job_match["message"].split(" ")[0] == sweep_match["message"].split(" ")[0]


def test_typo_suggestions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job, _ = job_error(tmp_path, CASES["key unknown to the chosen variant"][0])
    sweep, _ = sweep_error(tmp_path, CASES["key unknown to the chosen variant"][2])
    assert job.message == "unknown key for method 'lora'; did you mean 'r'?"
    assert sweep.message == "unknown key for scheduler 'asha'; did you mean 'grace_period'?"
    job, _ = job_error(tmp_path, CASES["unknown union tag"][0])
    sweep, _ = sweep_error(tmp_path, CASES["unknown union tag"][2])
    assert job.message.startswith("unknown method 'lorra'; did you mean 'lora'? expected one of: ")
    assert sweep.message == "unknown scheduler 'ashaa'; did you mean 'asha'? expected one of: asha, fifo"


def test_model_validator_message_is_shown_as_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job, _ = job_error(tmp_path, CASES["model validator"][0])
    sweep, _ = sweep_error(tmp_path, CASES["model validator"][2])
    assert job.message == "set either warmup_steps or warmup_ratio, not both"
    assert sweep.message == "grace_period (5) exceeds max_t (2)"


def test_overrides_point_at_override_in_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(BASE, encoding="utf-8")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(BASE + "search:\n" + SEARCH, encoding="utf-8")
    with pytest.raises(ConfigError) as job_info:
        load_config(job, ["trainer.max_steps=0"])
    with pytest.raises(ConfigError) as sweep_info:
        load_sweep(sweep, ["search.num_samples=0"])
    for info, field in ((job_info, "trainer.max_steps"), (sweep_info, "search.num_samples")):
        error = info.value
        assert (error.file, error.line, error.field) == (OVERRIDE_SOURCE, None, field)
        assert str(error) == f"{OVERRIDE_SOURCE}: {field}: input should be greater than or equal to 1 (got 0)"


def test_more_problems_are_counted_in_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job, _ = job_error(tmp_path, "trainer:\n  max_steps: 0\n  lr: -1\n")
    sweep, _ = sweep_error(tmp_path, "  num_samples: 0\n  time_budget_s: -1\n")
    assert job.message.endswith("(got 0) (and 1 more problem)")
    assert sweep.message.endswith("(got 0) (and 1 more problem)")


def test_unknown_key_message() -> None:
    assert (
        unknown_key_message("grace", ["grace_period", "max_t"]) == "unknown key; did you mean 'grace_period'?"
    )
    assert unknown_key_message("lrr", ["lr", "seed"], " for x") == "unknown key for x; did you mean 'lr'?"
    assert unknown_key_message("zzz", ["lr", "seed"]) == "unknown key; valid keys: lr, seed"


def test_sweep_loader_has_no_explainer_of_its_own() -> None:
    """The explainer exists once (config/errors.py); the sweep loader must not grow a copy again."""
    import tuneforge.tune.config as sweep_config

    source = Path(sweep_config.__file__).read_text(encoding="utf-8")
    assert "exc.errors(" not in source and "GENERIC_MESSAGES" not in source
