"""``method.objective`` and its knobs: every method has them, and impossible combinations fail at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.config import ConfigError, load_config

JOB = "data:\n  train_files: [pairs.jsonl]\nmethod:\n  name: {name}\n"


def _job(tmp_path: Path, name: str = "lora") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(name=name))
    return path


@pytest.mark.parametrize(
    ("name", "objective", "reference"),
    [
        ("lora", "dpo", "adapter_disabled"),
        ("ia3", "kto", "adapter_disabled"),
        ("prompt_tuning", "ipo", "adapter_disabled"),
        ("full", "dpo", "precomputed"),
        ("freeze", "kto", "precomputed"),
        ("lora", "simpo", "none"),
        ("full", "orpo", "none"),
        ("full", "sft", "none"),
    ],
)
def test_auto_reference_per_method(tmp_path: Path, name: str, objective: str, reference: str) -> None:
    extra = ["method.train_top_layers=1"] if name == "freeze" else []
    job = load_config(_job(tmp_path, name), [f"method.objective={objective}", *extra])
    assert job.method.objective == objective
    assert job.method.is_preference == (objective != "sft")
    assert job.method.resolved_reference() == reference


def test_knobs_are_read_and_switching_method_keeps_the_objective(tmp_path: Path) -> None:
    job = load_config(
        _job(tmp_path),
        ["method.objective=simpo", "method.beta=2.0", "method.simpo_gamma=1.0", "method.name=full"],
    )
    assert (job.method.name, job.method.objective, job.method.beta, job.method.simpo_gamma) == (
        "full", "simpo", 2.0, 1.0,
    )  # fmt: skip


def test_full_cannot_switch_off_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_job(tmp_path, "full"), ["method.objective=dpo", "method.reference=adapter_disabled"])
    assert "method" in str(info.value) and "use reference 'precomputed'" in str(info.value)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("method.objective=rlhf", "objective"),
        ("method.beta=0", "beta"),
        ("method.label_smoothing=0.5", "label_smoothing"),
        ("method.kto_desirable_weight=-1", "kto_desirable_weight"),
    ],
)
def test_bad_knobs_name_the_field(tmp_path: Path, override: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_job(tmp_path), [override])
    assert f"method.{words}" in str(info.value)


def test_modes_are_refused_for_a_preference_objective(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    modes = "data:\n  modes: [{mode: editor, from: [a.jsonl]}]\n"
    path.write_text(modes + "method:\n  name: lora\n  objective: dpo\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "data.modes builds SFT chats" in str(info.value)
