"""What crosses from the driver to each Ray Train worker: ``WorkerArgs`` and the checkpoint names.

A worker re-validates the dict it receives, so a key the driver forgot or misspelled fails on the
worker with a named field instead of being defaulted; the round trip is the wire format.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tuneforge.config import config_hash, load_config
from tuneforge.distributed.worker import registered_step
from tuneforge.distributed.worker_args import WorkerArgs

CONFIG = Path(__file__).resolve().parents[3] / "jobs/configs/finetune/tiny_cpu.yaml"


def _args(tmp_path: Path) -> WorkerArgs:
    job = load_config(CONFIG)
    return WorkerArgs(
        job=job,
        base_dir=tmp_path / "base",
        tokenizer_dir=tmp_path / "tok",
        total_steps=12,
        train_blocks=96,
        storage_dir=tmp_path / "ray" / "run",
        resume_from=None,
        tracking_uri="sqlite:///x.db",
        run_id="abc",
        config_hash=config_hash(job),
        extensions_dir=tmp_path / "ext",
    )


def test_worker_args_survive_the_wire_unchanged(tmp_path: Path):
    import json

    args = _args(tmp_path)
    wire = json.loads(json.dumps(args.to_config()))  # what Ray ships: plain JSON-safe data
    back = WorkerArgs.from_config(wire)
    assert back == args
    assert config_hash(back.job) == args.config_hash  # the job re-validates to the same config


def test_a_missing_or_misspelled_key_is_refused_by_name(tmp_path: Path):
    wire = _args(tmp_path).to_config()
    missing = {k: v for k, v in wire.items() if k != "total_steps"}
    with pytest.raises(ValidationError, match="total_steps"):
        WorkerArgs.from_config(missing)
    with pytest.raises(ValidationError, match="storage_dri"):
        WorkerArgs.from_config({**wire, "storage_dri": wire["storage_dir"]})


def test_worker_args_are_frozen(tmp_path: Path):
    args = _args(tmp_path)
    with pytest.raises(ValidationError):
        args.total_steps = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "step"),
    [("checkpoint_step_0000012", 12), ("checkpoint_step_0000004", 4), (None, -1), ("checkpoint_000001", -1)],
)
def test_the_registered_step_is_read_from_the_checkpoint_name(name: str | None, step: int):
    """A relay (worker.py) compares it with the newest step on storage; the directory may be gone."""
    assert registered_step(name) == step
