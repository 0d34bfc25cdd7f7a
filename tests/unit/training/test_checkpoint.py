"""A crash between writing a checkpoint and publishing it: the previous checkpoint loads and resume continues.

``tests/integration/test_resume.py`` truncates a checkpoint that was already published. Here a real
training process (the real ``setup_engine`` + ``run_loop`` + ``save_checkpoint`` on a 1-rank gloo
group, ZeRO-2) is SIGKILLed *inside* the publish path of its second resumable checkpoint, after that
checkpoint's files are written:

* ``save``: in ``save_checkpoint``, just before rank 0's completion marker (so before
  ``atomic_dir``'s rename): the staging copy is left half-published, nothing reaches storage;
* ``upload``: while the finished checkpoint is copied to storage (what ``ray.train.report`` does):
  the marker is already there, the DeepSpeed state file is cut in half.

Then, from what is on disk only: the torn directory is never chosen (``latest_resumable``, the
worker's ``restart_point``, the driver's ``resume_point`` behind ``--resume``), ``remove_orphans``
removes it, and a fresh process (another initial model) loads the previous checkpoint and gets back
exactly the weights, optimizer, scheduler and data position that were saved, and its next steps
train the same losses the crashed run trained.

This file is also the child process (``python test_checkpoint.py crash|resume ...``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tuneforge.testing import TINY_MODEL

CKPT_EVERY, CRASH_STEP, TOTAL = 2, 4, 6
GOOD_STEP = CRASH_STEP - CKPT_EVERY
RUN = "run"  # Ray's run name under the storage root: checkpoints go to <root>/run/checkpoint_step_N
VOCAB, SEQ, ROWS = 64, 16, 4
# The shared tiny shape on a 64-token vocabulary of random ids (no tokenizer) and a short context.
TINY = {**TINY_MODEL.model_dump(), "vocab_size": VOCAB, "max_position_embeddings": 64}


# --------------------------------------------------------------------------------------- child side
def _job(seed: int) -> Any:
    from tuneforge.config import config_from_dict

    return config_from_dict(
        {
            "data": {"train_files": ["synthetic.jsonl"]},
            "model": {"tiny": TINY},
            "trainer": {
                "max_seq_len": SEQ, "micro_batch_size": ROWS, "grad_accum": 1, "log_every": 1,
                "eval_every": 0, "checkpoint_every": CKPT_EVERY, "lr": 3e-3, "grad_clip": 1.0,
                "warmup_steps": 1, "seed": seed,
            },
            "distributed": {"num_workers": 1, "zero_stage": 2},
            "registry": {"model_name": None},
        }
    )  # fmt: skip


def _engine(seed: int) -> tuple[Any, Any]:
    import torch

    from tuneforge.models.factory import build_tiny_model
    from tuneforge.testing import free_port, init_process_group
    from tuneforge.training.engine import seed_everything, setup_engine

    torch.set_num_threads(1)
    init_process_group(0, 1, free_port())
    job = _job(seed)
    seed_everything(seed)
    model = build_tiny_model(job.model.tiny, VOCAB, seed=seed)
    engine = setup_engine(model, job.trainer, job.distributed, 1, TOTAL, torch.float32)
    return engine, job


def _batches(skip: int) -> list[dict[str, Any]]:
    from tuneforge.testing import synthetic_batches

    return synthetic_batches(TOTAL + 2, ROWS, SEQ, VOCAB, seed=7)[skip:]  # one micro-batch per step


def _snapshot(engine: Any) -> dict[str, Any]:
    """What a resume must get back: weights, optimizer state (ZeRO-2 fp32 partitions), scheduler."""
    opt = engine.optimizer
    inner = getattr(opt, "optimizer", opt)
    return {
        "params": [p.detach().clone() for p in engine.module.parameters()],
        "master": [p.detach().clone() for g in inner.param_groups for p in g["params"]],
        "optim": [
            {k: v.clone() if hasattr(v, "clone") else v for k, v in inner.state[p].items()}
            for g in inner.param_groups
            for p in g["params"]
        ],
        "sched": engine.lr_scheduler.state_dict(),
        "global_steps": engine.global_steps,
    }


class _StorageReporter:
    """Publishes each reported checkpoint the way ``ray.train.report`` does: a copy onto storage."""

    def __init__(self, storage: Path, losses: Path, crash: str) -> None:
        self.storage, self.losses, self.crash = storage, losses, crash

    def log(self, metrics: dict[str, float], step: int) -> None:
        if "train_loss" in metrics:
            with self.losses.open("a") as fh:  # survives the kill
                fh.write(json.dumps({"step": step, "loss": metrics["train_loss"]}) + "\n")

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, name: str | None = None) -> None:
        if checkpoint_dir is None or name is None:
            return
        target = self.storage / name
        files = sorted(p for p in checkpoint_dir.rglob("*") if p.is_file())
        if self.crash == "upload" and int(metrics["step"]) == CRASH_STEP:
            # The copy is not atomic and its order is not ours: the marker lands first, then the
            # DeepSpeed state is cut short by the kill.
            files.sort(key=lambda p: (not p.name.startswith("complete.rank"), "/ds/" in str(p)))
        for f in files:
            dst = target / f.relative_to(checkpoint_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if self.crash == "upload" and int(metrics["step"]) == CRASH_STEP and "/ds/" in str(f):
                data = f.read_bytes()
                with dst.open("wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            shutil.copy2(f, dst)


def child_crash(root: Path, crash: str) -> None:
    """Train with checkpoints every CKPT_EVERY steps and die while publishing the one at CRASH_STEP."""
    import torch

    import tuneforge.training.checkpoint as checkpoint_mod
    import tuneforge.training.loop as loop_mod
    from tuneforge.testing import NullTokenizer
    from tuneforge.training.objectives import objective_for
    from tuneforge.training.trainer_state import TrainerState

    real_save, real_marker = loop_mod.save_checkpoint, checkpoint_mod.write_marker

    def save_and_record(engine: Any, tokenizer: Any, out_dir: Any, **kw: Any) -> Any:
        if kw.get("resumable"):  # what this checkpoint holds, for the resumed process to compare
            torch.save(_snapshot(engine), root / f"expected_step{kw['state'].step}.pt")
        return real_save(engine, tokenizer, out_dir, **kw)

    def marker_or_die(local_dir: Path, rank: int) -> Path:
        if crash == "save" and TrainerState.load(local_dir).step == CRASH_STEP:
            os.kill(os.getpid(), signal.SIGKILL)  # every file written, no marker, no rename
        return real_marker(local_dir, rank)

    loop_mod.save_checkpoint = save_and_record
    checkpoint_mod.write_marker = marker_or_die
    engine, job = _engine(seed=11)
    loop_mod.run_loop(
        engine, NullTokenizer(), job.trainer, zero_stage=job.distributed.zero_stage,
        objective=objective_for(job.method), rank=0, world=1, total_steps=TOTAL,
        train_batches=lambda epoch, skip: _batches(skip), eval_batches=lambda: _batches(TOTAL),
        reporter=_StorageReporter(root / "storage" / RUN, root / "losses.jsonl", crash),
        device=torch.device("cpu"), config_hash="crash-test",
    )  # fmt: skip
    raise SystemExit("the crash hook never fired")


def child_resume(root: Path) -> None:
    """A restarted worker: pick the checkpoint as ``restart_point`` does, load it, train on."""
    from types import SimpleNamespace

    import ray.train
    import torch

    from tuneforge.distributed import worker
    from tuneforge.testing import NullTokenizer, RecordingReporter
    from tuneforge.training.checkpoint import load_resume_state
    from tuneforge.training.loop import run_loop
    from tuneforge.training.objectives import objective_for

    storage = root / "storage" / RUN
    registered = ray.train.Checkpoint.from_directory(str(storage / f"checkpoint_step_{GOOD_STEP:07d}"))
    worker.ray.train.get_checkpoint = lambda: registered  # what Ray Train hands a restarted worker
    found, unreported = worker.restart_point(SimpleNamespace(storage_dir=storage, resume_from=None))
    assert found is not None
    engine, job = _engine(seed=99)  # another initial model: only the load can make it match
    before = _snapshot(engine)
    load_resume_state(engine, found.path, 0)
    got, expected = _snapshot(engine), torch.load(root / f"expected_step{GOOD_STEP}.pt", weights_only=False)

    def same(a: list[Any], b: list[Any]) -> bool:
        return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    def same_state(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
        return len(a) == len(b) and all(
            x.keys() == y.keys() and all(torch.equal(torch.as_tensor(x[k]), torch.as_tensor(y[k])) for k in x)
            for x, y in zip(a, b, strict=True)
        )

    reporter = RecordingReporter()
    run_loop(
        engine, NullTokenizer(), job.trainer, zero_stage=job.distributed.zero_stage,
        objective=objective_for(job.method), rank=0, world=1, total_steps=CRASH_STEP,
        train_batches=lambda epoch, skip: _batches(skip), eval_batches=lambda: _batches(TOTAL),
        reporter=reporter, device=torch.device("cpu"), config_hash="crash-test", start=found.state,
    )  # fmt: skip
    result = {
        "chosen": found.path.name,
        "unreported": unreported,
        "step": found.state.step,
        "consumed": found.state.batches_in_epoch,
        "differed_before_load": not same(before["params"], expected["params"]),
        "params": same(got["params"], expected["params"]),
        "master": same(got["master"], expected["master"]),
        "optim": same_state(got["optim"], expected["optim"]),
        "sched": got["sched"] == expected["sched"],
        "global_steps": [got["global_steps"], expected["global_steps"]],
        "losses": {str(s): m["train_loss"] for s, m in reporter.logged if "train_loss" in m},
    }
    (root / "resume.json").write_text(json.dumps(result))
    engine.destroy()


# -------------------------------------------------------------------------------------- parent side
def _child(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": args[-1] + "/staging"}
    Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("crash", ["save", "upload"])
def test_a_crash_while_publishing_a_checkpoint_resumes_from_the_previous_one(tmp_path: Path, crash: str):
    from tuneforge.distributed.stages import resume_point
    from tuneforge.training.checkpoint_store import incomplete_reason, latest_resumable, remove_orphans

    out = _child("crash", crash, str(tmp_path))
    assert out.returncode == -signal.SIGKILL, out.stderr[-4000:]  # it really died in the publish path
    storage = tmp_path / "storage" / RUN
    good = storage / f"checkpoint_step_{GOOD_STEP:07d}"
    torn_name = f"checkpoint_step_{CRASH_STEP:07d}"
    assert incomplete_reason(good) is None

    if crash == "save":
        # Nothing of the torn checkpoint reached storage; its staging copy holds the files, no marker.
        assert sorted(p.name for p in storage.iterdir()) == [good.name]
        [staged] = list((tmp_path / "staging").glob(f"tuneforge-ckpt-*/.step_{CRASH_STEP:07d}.*"))
        assert (staged / "model.safetensors").is_file() and (staged / "tuneforge/ds/state").is_dir()
        assert json.loads((staged / "tuneforge/trainer_state.json").read_text())["step"] == CRASH_STEP
        assert "rank 0 never finished writing" in incomplete_reason(staged)
        # Had that unfinished copy reached storage as it was (a rank's share uploaded without its
        # marker), it must be an orphan, not a resume point.
        torn = storage / torn_name
        shutil.copytree(staged, torn)
    else:
        torn = storage / torn_name
        assert (torn / "tuneforge/complete.rank0.json").is_file()  # the marker made it, the files did not
        assert "truncated" in incomplete_reason(torn)

    chosen = latest_resumable(storage)
    assert chosen is not None and chosen.path == good and chosen.state.step == GOOD_STEP
    # ``--resume RUN_DIR`` asks the driver's resume_point, which removes orphans first.
    said: list[str] = []
    assert resume_point(tmp_path / "storage", RUN, said.append) == good
    assert not torn.exists()
    assert said == [f"removed an incomplete checkpoint (a crash mid-write): {torn_name}"]
    assert remove_orphans(storage) == [] and good.exists()

    out = _child("resume", str(tmp_path))
    assert out.returncode == 0, out.stderr[-4000:]
    r = json.loads((tmp_path / "resume.json").read_text())
    assert r["chosen"] == good.name and r["step"] == GOOD_STEP and r["consumed"] == GOOD_STEP
    assert r["unreported"] is False  # Ray had registered it: nothing to relay
    assert r["differed_before_load"]
    assert r["params"] and r["master"] and r["optim"] and r["sched"], r
    assert r["global_steps"][0] == r["global_steps"][1] == GOOD_STEP
    crashed = {}
    for line in (tmp_path / "losses.jsonl").read_text().splitlines():
        crashed[str(json.loads(line)["step"])] = json.loads(line)["loss"]
    # The resumed process trains steps GOOD_STEP+1..CRASH_STEP on the same batches, from the same
    # state: the same losses the crashed run logged before it died (CPU, one rank: bit for bit).
    resumed_steps = [str(s) for s in range(GOOD_STEP + 1, CRASH_STEP + 1)]
    assert sorted(r["losses"]) == resumed_steps
    for s in resumed_steps:
        assert r["losses"][s] == pytest.approx(crashed[s], abs=1e-6), (s, r["losses"], crashed)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "crash":
        child_crash(Path(sys.argv[3]), sys.argv[2])
    else:
        child_resume(Path(sys.argv[2]))
