"""Worker thread counts: the node's cores shared by the job's workers on it, not Ray's CPU reservation."""

from __future__ import annotations

import os

import pytest
import torch

from tuneforge.distributed.threads import node_cores, set_worker_threads, worker_threads


@pytest.mark.parametrize(
    ("configured", "cores", "local", "expected"),
    [
        (None, 2, 1, 2),  # one worker on a 2-core node: both cores (Ray's OMP_NUM_THREADS would say 1)
        (None, 2, 2, 1),
        (None, 16, 3, 5),
        (None, 2, 4, 1),  # oversubscribed: never 0
        (3, 2, 1, 3),  # distributed.threads_per_worker wins
    ],
)
def test_threads_share_the_node(configured: int | None, cores: int, local: int, expected: int) -> None:
    assert worker_threads(configured, cores, local) == expected


def test_set_worker_threads_sizes_torch_and_openmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # restored after
    before = torch.get_num_threads()
    try:
        n = set_worker_threads(None, local_workers=1)
        assert n == node_cores() == torch.get_num_threads()
        assert os.environ["OMP_NUM_THREADS"] == str(n)
    finally:
        torch.set_num_threads(before)


def test_a_local_sweep_splits_the_cores_among_concurrent_trials() -> None:
    from tuneforge.config import config_from_dict
    from tuneforge.distributed.threads import with_trial_threads

    base = {"data": {"train_files": ["x.jsonl"]}, "registry": {"model_name": None}}
    job = config_from_dict({**base, "distributed": {"num_workers": 1}})
    assert with_trial_threads(job, 2, cores=2).distributed.threads_per_worker == 1  # 2 trials x 1 worker
    assert with_trial_threads(job, 1, cores=8).distributed.threads_per_worker == 8
    fixed = config_from_dict({**base, "distributed": {"num_workers": 1, "threads_per_worker": 3}})
    assert with_trial_threads(fixed, 4, cores=2).distributed.threads_per_worker == 3  # the user's value
