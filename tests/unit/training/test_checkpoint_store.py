"""Completion markers, torn checkpoints, retention, RNG state, resume refusals and data positions."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from tuneforge.config import load_config, save_config
from tuneforge.tracking import redact_mapping
from tuneforge.training import rng
from tuneforge.training.checkpoint_store import (
    incomplete_reason,
    latest_resumable,
    prune,
    remove_orphans,
    scan,
    write_marker,
)
from tuneforge.training.resume import RunRecord, find_run, resumed_job
from tuneforge.training.trainer_state import STATE_FILE, TrainerState

CONFIG = Path(__file__).resolve().parents[3] / "jobs/configs/finetune/tiny_cpu.yaml"


def _checkpoint(storage: Path, step: int, eval_loss: float, world: int = 2) -> Path:
    """A checkpoint as two ranks leave it on storage: rank 0's export + state, each rank's shard."""
    d = storage / f"checkpoint_step_{step:07d}"
    for rank in range(world):
        local = d / f".rank{rank}"  # each rank writes its own folder; Ray merges them
        (local / "tuneforge/ds/state").mkdir(parents=True)
        (local / f"tuneforge/ds/state/zero_pp_rank_{rank}_optim_states.pt").write_bytes(b"x" * (100 + step))
        if rank == 0:
            (local / "model.safetensors").write_bytes(b"w" * 64)
            state = TrainerState(step, 0, step * 2, "h", world, 1, eval_loss, 9.0, 0.0, True)
            (local / STATE_FILE).write_text(json.dumps(asdict(state)))
        write_marker(local, rank)
        for f in local.rglob("*"):
            if f.is_file():
                dst = d / f.relative_to(local)
                dst.parent.mkdir(parents=True, exist_ok=True)
                f.replace(dst)
    for leftover in d.glob(".rank*"):
        shutil.rmtree(leftover)
    return d


def test_a_complete_checkpoint_needs_every_ranks_marker_and_intact_files(tmp_path: Path):
    d = _checkpoint(tmp_path, 5, 1.0)
    assert incomplete_reason(d) is None
    (d / "tuneforge/complete.rank1.json").unlink()
    assert "rank 1" in incomplete_reason(d)

    d = _checkpoint(tmp_path, 10, 1.0)
    shard = d / "tuneforge/ds/state/zero_pp_rank_1_optim_states.pt"
    shard.write_bytes(shard.read_bytes()[:50])  # torn upload: truncated
    assert "truncated" in incomplete_reason(d)

    d = _checkpoint(tmp_path, 15, 1.0)
    shard = d / "model.safetensors"
    shard.write_bytes(b"v" * 64)  # same size, other bytes
    assert incomplete_reason(d, verify_hashes=False) is None
    assert "sha256" in incomplete_reason(d)


def test_files_are_fsynced_before_their_marker_and_the_rename_after_it(tmp_path: Path, monkeypatch):
    """Atomic publish is durable too: every listed file and directory, then the marker, then its rename;
    ``models.io.atomic_dir`` likewise syncs its tree before the rename and the parent after it."""
    import os

    from tuneforge.models.io import atomic_dir

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    local = tmp_path / "rank0"
    (local / "tuneforge/ds").mkdir(parents=True)
    (local / "tuneforge/ds/shard.pt").write_bytes(b"x" * 10)
    (local / "model.safetensors").write_bytes(b"w" * 10)
    marker = write_marker(local, 0)
    expected = [
        local / "tuneforge/ds/shard.pt",
        local / "model.safetensors",
        local,
        marker.with_suffix(".tmp"),
    ]
    for path in expected:
        assert str(path) in synced, path
    assert synced.index(str(marker.with_suffix(".tmp"))) > synced.index(str(local / "model.safetensors"))
    assert synced[-1] == str(marker.parent)  # after the rename

    synced.clear()
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights.safetensors").write_bytes(b"w")
    assert synced == [str(tmp / "weights.safetensors"), str(tmp), str(tmp_path)]
    assert (tmp_path / "model/weights.safetensors").read_bytes() == b"w"


def test_resume_takes_the_newest_complete_checkpoint_and_orphans_are_removed(tmp_path: Path):
    _checkpoint(tmp_path, 5, 1.0)
    good = _checkpoint(tmp_path, 10, 1.0)
    torn = _checkpoint(tmp_path, 15, 1.0)
    (torn / "model.safetensors").write_bytes(b"")
    assert latest_resumable(tmp_path).path == good
    assert remove_orphans(tmp_path) == [torn]
    assert not torn.exists() and good.exists()


def test_retention_keeps_the_last_k_and_the_best_k(tmp_path: Path):
    losses = {5: 3.0, 10: 1.0, 15: 2.0, 20: 2.5, 25: 2.2}
    for step, loss in losses.items():
        _checkpoint(tmp_path, step, loss)
    dropped = prune(tmp_path, keep_last=2, keep_best=1)
    kept = [c.state.step for c in scan(tmp_path)[0]]
    assert kept == [10, 20, 25]  # last two + the best (step 10)
    assert sorted(p.name for p in dropped) == ["checkpoint_step_0000005", "checkpoint_step_0000015"]


def test_rng_state_round_trips_through_json(tmp_path: Path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    torch.rand(5), np.random.rand(5), random.random()
    rng.save_rng_state(tmp_path, 0)
    expected = (torch.rand(4), np.random.rand(4), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    assert rng.load_rng_state(tmp_path, 0)
    got = (torch.rand(4), np.random.rand(4), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert not rng.load_rng_state(tmp_path, 1)  # a rank the saved world did not have


def _run_dir(tmp_path: Path, status: str = "RUNNING", *overrides: str) -> Path:
    job = load_config(CONFIG, list(overrides))
    run_dir = tmp_path / "run"
    save_config(job, run_dir / "job.yaml")
    RunRecord("abc", "full-1", "exp", status).write(run_dir)
    return run_dir


def test_resume_refuses_a_config_that_trains_something_else(tmp_path: Path):
    target = find_run(_run_dir(tmp_path))
    with pytest.raises(ValueError, match=r"trainer.lr: 0.003 -> 0.01"):
        resumed_job(target, load_config(CONFIG, ["trainer.lr=0.01"]), redact_mapping)


def test_resume_on_another_worker_count_keeps_the_global_batch(tmp_path: Path):
    # ZeRO-2 (the config's stage): partitioned optimizer state is resharded through a universal
    # checkpoint on load (tests/integration/test_zero_world_change.py), so the new count is accepted.
    target = find_run(_run_dir(tmp_path / "z2"))
    job = resumed_job(target, load_config(CONFIG, ["distributed.num_workers=1"]), redact_mapping)
    assert (job.distributed.zero_stage, job.distributed.num_workers, job.trainer.grad_accum) == (2, 1, 2)
    with pytest.raises(ValueError, match="cannot split evenly"):
        resumed_job(target, load_config(CONFIG, ["distributed.num_workers=3"]), redact_mapping)
    target = find_run(_run_dir(tmp_path, "RUNNING", "distributed.zero_stage=0"))
    z0 = ["distributed.zero_stage=0"]
    job = resumed_job(target, load_config(CONFIG, [*z0, "distributed.num_workers=1", "trainer.max_steps=80"]),
                      redact_mapping)  # fmt: skip
    assert (job.distributed.num_workers, job.trainer.grad_accum, job.trainer.max_steps) == (1, 2, 80)
    assert job.trainer.output_dir == str(target.run_dir) and job.tracking.run_name == "full-1"
    with pytest.raises(ValueError, match="cannot split evenly"):
        resumed_job(target, load_config(CONFIG, [*z0, "distributed.num_workers=3"]), redact_mapping)


def test_resume_refuses_a_finished_run_and_a_directory_that_is_no_run(tmp_path: Path):
    target = find_run(_run_dir(tmp_path, status="FINISHED"))
    with pytest.raises(ValueError, match="finished"):
        resumed_job(target, load_config(CONFIG), redact_mapping)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a tuneforge run directory"):
        find_run(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        find_run(tmp_path / "missing")
