"""Validated configs are read-only: a change is a copy (``model_copy``), and ``resolve_paths`` returns one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from tuneforge.config import JobConfig, load_config
from tuneforge.config.errors import is_model, tagged_members
from tuneforge.config.loader import resolve_paths, validate
from tuneforge.tune.config import AshaSchedulerConfig, FifoSchedulerConfig, SweepConfig

JOB = """\
model: {name_or_path: base_model, tokenizer: tok}
data:
  train_files: [train.jsonl]
  eval_files: [{path: eval.jsonl}]
  modes: [{mode: instruct, from: [src.jsonl]}]
"""


def _sections(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """``model`` and every section class reachable from it (method variants and list items included)."""
    yield model
    for field in model.model_fields.values():
        members = tagged_members(field)
        if members:
            for member in members.values():
                yield from _sections(member)
        elif is_model(field.annotation):
            yield from _sections(field.annotation)
        else:
            for arg in getattr(field.annotation, "__args__", ()):
                if is_model(arg):
                    yield from _sections(arg)


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A job file whose local paths all exist next to it; cwd is elsewhere, so they resolve against it."""
    for name in ("train.jsonl", "eval.jsonl", "src.jsonl", "tok"):
        (tmp_path / name).write_text("{}\n", encoding="utf-8")
    (tmp_path / "base_model").mkdir()
    (tmp_path / "job.yaml").write_text(JOB, encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


@pytest.mark.parametrize("section", sorted(set(_sections(JobConfig)), key=lambda cls: cls.__name__))
def test_every_job_section_is_frozen(section: type[BaseModel]) -> None:
    assert section.model_config.get("frozen") is True
    assert section.model_config.get("extra") == "forbid"  # a subclass's own model_config keeps both


@pytest.mark.parametrize("section", [SweepConfig, AshaSchedulerConfig, FifoSchedulerConfig])
def test_sweep_sections_are_frozen(section: type[BaseModel]) -> None:
    assert section.model_config.get("frozen") is True


def test_assigning_to_a_loaded_job_raises(job_dir: Path) -> None:
    job = load_config(job_dir / "job.yaml")
    lr = job.trainer.lr
    with pytest.raises(ValidationError, match="frozen"):
        job.trainer.lr = 123  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        job.trainer = job.trainer  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        job.data.train_files[0].path = "other.jsonl"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        job.data.modes[0].sources = []  # type: ignore[misc]
    assert job.trainer.lr == lr


def test_a_change_is_a_copy(job_dir: Path) -> None:
    job = load_config(job_dir / "job.yaml")
    changed = job.model_copy(update={"trainer": job.trainer.model_copy(update={"lr": 0.5})})
    assert changed.trainer.lr == 0.5
    assert job.trainer.lr != 0.5


def test_resolve_paths_returns_a_resolved_copy_and_leaves_its_input(job_dir: Path) -> None:
    raw = {
        "model": {"name_or_path": "base_model", "tokenizer": "tok"},
        "data": {
            "train_files": ["train.jsonl"],
            "eval_files": [{"path": "eval.jsonl"}],
            "modes": [{"mode": "instruct", "from": ["src.jsonl"]}],
        },
    }
    job = validate(raw, source=None, lines={}, overridden=[])
    before = job.model_dump()

    resolved = resolve_paths(job, job_dir)

    assert resolved is not job
    assert job.model_dump() == before  # the input is untouched
    assert resolved.data.train_files[0].path == str(job_dir / "train.jsonl")
    assert resolved.data.eval_files[0].path == str(job_dir / "eval.jsonl")
    assert resolved.data.modes[0].sources == [str(job_dir / "src.jsonl")]
    assert resolved.model.name_or_path == str(job_dir / "base_model")
    assert resolved.model.tokenizer == str(job_dir / "tok")
    # everything else is carried over unchanged
    assert resolved.trainer == job.trainer
    assert resolved.method == job.method
    assert resolved.data.model_dump(exclude={"train_files", "eval_files", "modes"}) == job.data.model_dump(
        exclude={"train_files", "eval_files", "modes"}
    )


def test_load_config_returns_the_resolved_job(job_dir: Path) -> None:
    job = load_config(job_dir / "job.yaml")
    assert job.data.train_files[0].path == str(job_dir / "train.jsonl")
    assert job.model.name_or_path == str(job_dir / "base_model")
