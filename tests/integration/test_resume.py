"""A killed worker, a torn checkpoint resumed on fewer workers, and a SIGTERM, on a real Ray head.

Every run writes a batch ledger (``trainer.batch_ledger``): one line per micro-batch a rank trained,
with its optimizer step, global index and a fingerprint of its token ids. An interrupted run's
effective training is the ledger of each attempt up to the step the next attempt resumed from; it
must equal the uninterrupted run's ledger batch for batch: none repeated, none skipped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tuneforge.training.checkpoint import load_probe
from tuneforge.training.checkpoint_store import incomplete_reason, scan

pytestmark = pytest.mark.slow  # about 8 minutes: five short runs of two workers each

REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = str(REPO / ".venv" / "bin" / "tuneforge")
CONFIG = "jobs/configs/finetune/tiny_cpu.yaml"
STEPS, EVERY = 20, 5
# CPU kernels and gloo are deterministic; a resumed run restores optimizer, scheduler and RNG state
# exactly, so the same seed gives the same weights. 1e-4 covers float re-association only.
LOSS_TOL = 1e-4
# One worker sees the whole eval set, two see Ray's equal split of it (up to one row dropped), so a
# resume on another worker count is compared by the final weights' probe logits, not by eval loss.
# One worker (grad_accum 2) vs two sum the same gradients in another order (fp32).
PROBE_TOL = 1e-3


def _args(out: Path, *extra: str) -> list[str]:
    return [
        "train", CONFIG, f"trainer.max_steps={STEPS}", f"trainer.checkpoint_every={EVERY}",
        "trainer.eval_every=10", f"trainer.output_dir={out}", f"trainer.batch_ledger={out / 'ledger'}",
        "trainer.keep_last=10", "registry.promote=false", "registry.model_name=tf-resume", *extra, "--json",
    ]  # fmt: skip


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TUNEFORGE, *args], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=timeout
    )


def _summary(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ledger(run_dir: Path) -> list[dict]:
    rows = []
    for f in sorted((run_dir / "ledger").glob("rank*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _effective(rows: list[dict]) -> dict[tuple[int, int], str]:
    """(epoch, global index) -> fingerprint of what the final weights were trained on.

    Attempts are told apart by process id, in the order they started. Each attempt's batches after
    the step the next attempt resumed from were rolled back (trained, then lost with the process):
    they are dropped, and re-training them is not a repeat. A batch kept twice is a repeat.
    """
    by_pid: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_pid[r["pid"]].append(r)
    first_step = {pid: min(r["step"] for r in rs) for pid, rs in by_pid.items()}
    attempts = sorted({first_step[p] for p in by_pid})  # an attempt's ranks share its first step
    effective: dict[tuple[int, int], str] = {}
    for pid, rs in by_pid.items():
        start = first_step[pid]
        later = [s for s in attempts if s > start]
        end = later[0] - 1 if later else 10**9  # the next attempt resumed after step later[0] - 1
        for r in rs:
            if r["step"] <= end:
                key = (r["epoch"], r["index"])
                assert key not in effective, f"batch {key} trained twice"
                effective[key] = r["fp"]
    return effective


def _wait_for_step(ledger: Path, rank: int, step: int, proc: subprocess.Popen, timeout: float = 300) -> int:
    """Block until ``rank`` has trained a micro-batch of ``step``; return that worker's pid."""
    f = ledger / f"rank{rank}.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if f.exists():
            for line in f.read_text().splitlines():
                row = json.loads(line)
                if row["step"] >= step:
                    return int(row["pid"])
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} never reached step {step}")


@pytest.fixture(scope="module")
def reference(ray_head, tuneforge_home: Path, tmp_path_factory) -> dict:
    """The uninterrupted run: 2 workers, ZeRO-2, the same seed."""
    out = tmp_path_factory.mktemp("reference")
    s = _summary(_run(*_args(out)))
    return {"summary": s, "batches": _effective(_ledger(out))}


def test_a_killed_worker_is_replaced_and_the_run_neither_repeats_nor_skips(reference, tmp_path: Path):
    """SIGKILL rank 1 at a random step: Ray Train replaces the group (``max_failures`` defaults to
    3), the workers resume from the newest complete checkpoint, and the run ends where the
    uninterrupted one did: same batches, same final loss, at most one checkpoint interval lost."""
    kill_step = random.Random(os.getpid()).randint(EVERY + 1, STEPS - EVERY)
    proc = subprocess.Popen(
        [TUNEFORGE, *_args(tmp_path)], cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid = _wait_for_step(tmp_path / "ledger", 1, kill_step, proc)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    s = _summary(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))

    rows = _ledger(tmp_path)
    pids = {r["pid"] for r in rows}
    assert len(pids) == 4, f"expected 2 attempts x 2 ranks, got pids {pids} (kill at step {kill_step})"
    resumed_at = max(min(r["step"] for r in rows if r["pid"] == p) for p in pids) - 1
    killed_at = max(r["step"] for r in rows if r["pid"] == pid)
    assert killed_at - resumed_at <= EVERY, (killed_at, resumed_at)  # lost <= one checkpoint interval
    assert resumed_at % EVERY == 0 and resumed_at > 0
    assert _effective(rows) == reference["batches"]  # none repeated, none skipped, same order
    assert s["steps"] == STEPS
    assert abs(s["eval_loss_after"] - reference["summary"]["eval_loss_after"]) < LOSS_TOL


def test_a_torn_checkpoint_is_skipped_and_resume_continues_on_one_worker(reference, tmp_path: Path):
    """A 2-worker ZeRO-2 run without restarts (max_failures=0) dies at a random step; its newest
    checkpoint is then torn as a crash mid-upload leaves it (a file truncated, the markers intact).
    ``--resume`` with **one** worker removes it, continues from the previous complete checkpoint
    (``grad_accum`` doubled, so a step still consumes the same two global micro-batches), trains
    exactly the batches the uninterrupted 2-worker ZeRO-2 run trained after that step, and ends at
    its loss, in the same MLflow run."""
    kill_step = random.Random(os.getpid() + 1).randint(2 * EVERY + 1, STEPS - 1)
    once = ("distributed.max_failures=0",)  # ZeRO-2: 1 worker loads its partitions via a universal ckpt
    proc = subprocess.Popen(
        [TUNEFORGE, *_args(tmp_path, *once)], cwd=REPO, env=os.environ.copy(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid = _wait_for_step(tmp_path / "ledger", 1, kill_step, proc)
    os.kill(pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]

    (storage,) = list((tmp_path / "ray").iterdir())
    complete, _ = scan(storage)
    assert len(complete) >= 2, [c.path.name for c in complete]
    newest, previous = complete[-1], complete[-2]
    shard = max((p for p in newest.path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with shard.open("r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    assert incomplete_reason(newest.path) is not None
    first = json.loads((tmp_path / "run.json").read_text())

    out = _run(*_args(tmp_path, *once, "distributed.num_workers=1"), "--resume", str(tmp_path))
    s = _summary(out)
    assert not newest.path.exists(), "the torn checkpoint was not removed"
    assert s["run_id"] == first["run_id"] and s["steps"] == STEPS
    rows = _ledger(tmp_path)
    first_pids = {r["pid"] for r in rows if r["step"] == 1}
    resumed = [r for r in rows if r["pid"] not in first_pids]
    assert len({r["pid"] for r in resumed}) == 1, "the resume was to run on one worker"
    assert min(r["step"] for r in resumed) == previous.state.step + 1
    assert _effective(rows) == reference["batches"]
    _, ours = load_probe(s["checkpoint"])
    _, theirs = load_probe(reference["summary"]["checkpoint"])
    diff = float((ours - theirs).abs().max())
    assert diff < PROBE_TOL, f"final probe logits differ by {diff:.3g} from the uninterrupted run"
    shutil.rmtree(tmp_path / "ray", ignore_errors=True)


def test_sigterm_saves_a_checkpoint_before_the_worker_exits_and_resume_continues(reference, tmp_path: Path):
    """SIGTERM (a preemption notice) to rank 1 between checkpoints: every rank saves a resumable
    checkpoint at the next step boundary before the run stops (max_failures=0, so it stops for
    good); ``--resume`` continues from exactly that step and ends where the uninterrupted run did."""
    every = 100  # no periodic checkpoint: the only resumable one is the preemption's
    kill_step = random.Random(os.getpid() + 2).randint(3, STEPS - 3)
    args = _args(tmp_path, "distributed.max_failures=0", f"trainer.checkpoint_every={every}")
    proc = subprocess.Popen(
        [TUNEFORGE, *args], cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    pid = _wait_for_step(tmp_path / "ledger", 1, kill_step, proc)
    os.kill(pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    assert "resumable" in stderr and "Traceback" not in stderr, stderr[-3000:]

    (storage,) = list((tmp_path / "ray").iterdir())
    (saved,) = [c for c in scan(storage)[0] if c.state.resumable]
    stopped_at = max(r["step"] for r in _ledger(tmp_path) if r["pid"] == pid)
    assert saved.state.step == stopped_at  # saved at the step it was in when told, nothing lost
    # Ray delivers the signal to the actor's main thread when its task loop next checks signals,
    # so the boundary it stops at may be a step or two after the one it was sent in (measured:
    # up to 2); what matters is that it stopped there, before the end, with nothing lost.
    assert kill_step <= saved.state.step < STEPS

    s = _summary(_run(*args, "--resume", str(saved.path)))
    rows = _ledger(tmp_path)
    first_pids = {r["pid"] for r in rows if r["step"] == 1}
    assert min(r["step"] for r in rows if r["pid"] not in first_pids) == saved.state.step + 1
    assert _effective(rows) == reference["batches"]
    assert abs(s["eval_loss_after"] - reference["summary"]["eval_loss_after"]) < LOSS_TOL


def test_a_killed_sweep_trial_worker_recovers_and_asha_sees_every_report(ray_head, tmp_path: Path):
    """SIGKILL the Train worker of a sweep trial just after a checkpoint: Ray Train replaces it
    inside the trial, the trial continues from its checkpoint (one ledger per trial), and every
    evaluation reaches Tune exactly once, in order: the scheduler (ASHA) ranks trials by
    ``training_iteration``, so a restart must neither reset nor repeat it."""
    every, steps = 4, 12
    ledger = tmp_path / "ledger"
    cmd = [
        TUNEFORGE, "sweep", "jobs/configs/sweep/tiny_cpu.yaml", "--name", "killed-trial",
        "search.num_samples=1", "distributed.num_workers=1", f"trainer.max_steps={steps}",
        f"trainer.eval_every={every}", f"trainer.checkpoint_every={every}", f"trainer.batch_ledger={ledger}",
        "registry.model_name=tf-killed-trial", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not (trial_ledgers := list(ledger.glob("trial-*/rank0.jsonl"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    (trial_ledger,) = trial_ledgers
    pid = _wait_for_step(trial_ledger.parent, 0, every, proc)
    # Kill the moment the step-4 checkpoint is whole on storage: ray.train.report has then queued
    # its result, which Ray Train's controller collects on its next poll (every 2 s), so the report
    # is usually lost with the worker and the replacement must relay it (RayReporter.relay).
    trials = Path(os.environ["TUNEFORGE_HOME"]) / "sweeps" / "killed-trial" / "trials"
    name = f"checkpoint_step_{every:07d}"
    while not any(incomplete_reason(d, verify_hashes=False) is None for d in trials.glob(f"trial-*/{name}")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    s = _summary(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))

    (trial,) = s["trials"]
    assert trial["status"] == "completed" and trial["iterations"] == steps // every, trial
    rows = [json.loads(line) for line in trial_ledger.read_text().splitlines()]
    pids = list(dict.fromkeys(r["pid"] for r in rows))
    assert len(pids) == 2 and pids[0] == pid, f"expected the killed worker and its replacement: {pids}"
    resumed_at = min(r["step"] for r in rows if r["pid"] == pids[1]) - 1
    assert resumed_at == every, f"resumed after step {resumed_at}, not from the step-{every} checkpoint"
    kept = [(r["epoch"], r["index"]) for r in rows if r["pid"] == pids[1] or r["step"] <= resumed_at]
    assert len(kept) == len(set(kept)), "a batch was trained twice"
    for epoch in {e for e, _ in kept}:  # each epoch's global indices run 0, 1, 2, ... with no gap
        indices = sorted(i for e, i in kept if e == epoch)
        assert indices == list(range(len(indices))), f"a batch of epoch {epoch} was skipped: {indices}"

    # What Tune (and so ASHA) received from the trial: one result per evaluation, in step order.
    (result_file,) = Path(s["sweep_dir"]).rglob("result.json")
    results = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
    assert [r["training_iteration"] for r in results] == [1, 2, 3], results
    assert [int(r["step"]) for r in results] == [every, 2 * every, steps]
