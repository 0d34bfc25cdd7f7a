"""The stages a run and a sweep trial share: where an attempt resumes, and how a failed fit reads."""

from __future__ import annotations

from pathlib import Path

from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

from tuneforge.config import load_config
from tuneforge.distributed.stages import attempt_name, attempt_storages, failure_message, resume_point

from ..training.test_checkpoint_store import _checkpoint  # the storage layout Ray leaves

CONFIG = Path(__file__).resolve().parents[3] / "jobs/configs/finetune/tiny_cpu.yaml"


def test_a_new_attempt_resumes_from_the_newest_complete_checkpoint_of_any_earlier_attempt(tmp_path: Path):
    """A trial (or run) restarted twice: attempts 0 and 1 left checkpoints; attempt 1's newest is torn."""
    root = tmp_path / "trials"
    _checkpoint(root / "trial-a", 5, 1.0)
    good = _checkpoint(root / "trial-a-resume1", 10, 1.0)
    torn = _checkpoint(root / "trial-a-resume1", 15, 1.0)
    (torn / "model.safetensors").write_bytes(b"")
    _checkpoint(root / "trial-ab", 20, 1.0)  # another trial whose id starts the same: not ours
    said: list[str] = []
    assert [p.name for p in attempt_storages(root, "trial-a")] == ["trial-a", "trial-a-resume1"]
    assert resume_point(root, "trial-a", said.append) == good
    assert not torn.exists() and any("incomplete" in m for m in said)
    assert attempt_name("trial-a", len(attempt_storages(root, "trial-a"))) == "trial-a-resume2"
    assert resume_point(root, "trial-b", said.append) is None  # a fresh trial starts from step 0


def test_a_worker_group_that_cannot_start_says_what_it_waited_for_and_what_the_cluster_has():
    job = load_config(CONFIG)
    try:
        try:
            raise WorkerGroupStartupTimeoutError(num_workers=2)
        except WorkerGroupStartupTimeoutError as inner:
            raise RuntimeError("Training failed due to controller error") from inner
    except RuntimeError as exc:
        line = failure_message(exc, job, ({"CPU": 4.0}, {"CPU": 0.5}))
    assert line.startswith("the worker group did not start: 2 tries of 60 s")
    assert "2 workers x 0.5 CPU" in line and "the cluster has 4 CPUs, 0.5 free" in line
    assert "\n" not in line


def test_a_start_timeout_inside_ray_trains_controller_error_is_recognised():
    """Ray Train raises ``ControllerError`` holding the timeout as ``controller_failure``, not as a cause.

    Found by ``tests/integration/test_worker_group_start.py``: the real error said "training failed
    (ControllerError: ...)" instead of what the group waited for.
    """
    from ray.train import ControllerError

    job = load_config(CONFIG)
    exc = ControllerError(WorkerGroupStartupTimeoutError(num_workers=2))
    assert exc.__cause__ is None
    line = failure_message(exc, job, ({"CPU": 4.0}, {"CPU": 2.0}))
    assert line.startswith("the worker group did not start: 2 tries of 60 s waiting for 2 workers x 0.5 CPU")
    assert "the cluster has 4 CPUs, 2 free" in line and "\n" not in line


def test_any_other_failure_names_its_root_cause_and_the_restarts_used():
    job = load_config(CONFIG)
    try:
        try:
            raise OSError("No space left on device\nmore detail")
        except OSError as inner:
            raise RuntimeError("wrapped by Ray") from inner
    except RuntimeError as exc:
        line = failure_message(exc, job)
    assert line == "training failed (OSError: No space left on device) after 3 allowed restart(s)"
