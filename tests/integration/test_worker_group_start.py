"""A worker group that fits the cluster but cannot start fails after a bounded wait, with one line.

Before the bound, a trial whose CPUs were held by a leaked placement group retried worker start-up
every 60 s for 13 minutes without a word. Here the test process holds part of the session head's
CPUs with a placement group of its own, so a tiny ``tuneforge train`` passes the fit check (the
cluster's total fits it) but can never place its workers (the free CPUs do not). The run must exit 1
within a bounded time, saying what it waited for and what the cluster has.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneforge.distributed.preflight import DATA_CPUS, START_RETRIES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "tuneforge")
TINY = "jobs/configs/finetune/tiny_cpu.yaml"
WAIT_S = 5  # RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S for this run (default 60)
WORKERS, CPUS_PER_WORKER = 2, 1.5
# Start-up (Ray client, data preparation, tokenizer) plus (START_RETRIES + 1) waits of WAIT_S; a run
# that retried forever (Ray's default) would blow through it.
BOUND_S = 150


def test_a_worker_group_that_cannot_start_fails_after_a_bounded_wait(ray_head, tmp_path: Path) -> None:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    ray.init(address=ray_head.gcs_address, ignore_reinit_error=True, log_to_driver=False)
    total = float(ray.cluster_resources()["CPU"])
    need = WORKERS * CPUS_PER_WORKER
    assert need + DATA_CPUS <= total, "the fit check must pass: the cluster's total fits the run"
    # Leave Ray Data its CPU (data preparation must not be what blocks) but less than the workers need.
    hold = total - need + DATA_CPUS
    free_after = total - hold
    assert DATA_CPUS <= free_after < need
    pg = placement_group([{"CPU": hold}], strategy="STRICT_PACK", name="tf-test-hold-cpus")
    try:
        ray.get(pg.ready(), timeout=60)
        env = {
            **ray_head.env,
            "RAY_ADDRESS": ray_head.gcs_address,
            "TUNEFORGE_HOME": str(tmp_path / "home"),
            "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(WAIT_S),
            "COLUMNS": "300",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        args = [
            EXE, "train", TINY, "trainer.max_steps=2", f"distributed.num_workers={WORKERS}",
            f"distributed.cpus_per_worker={CPUS_PER_WORKER}", f"trainer.output_dir={tmp_path / 'out'}",
            "registry.model_name=null", "registry.promote=false",
        ]  # fmt: skip
        started = time.perf_counter()
        out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=BOUND_S + 30)
        elapsed = time.perf_counter() - started
    finally:
        remove_placement_group(pg)
    assert out.returncode == 1, out.stderr[-4000:]
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
    assert elapsed < BOUND_S, elapsed
    assert elapsed >= (START_RETRIES + 1) * WAIT_S, "it gave up before waiting its bounded time"
    lines = [line for line in out.stderr.splitlines() if "the worker group did not start" in line]
    assert len(lines) == 1, out.stderr[-4000:]
    expected = (
        f"the worker group did not start: {START_RETRIES + 1} tries of {WAIT_S:g} s waiting for "
        f"{WORKERS} workers x {CPUS_PER_WORKER:g} CPU, but the cluster has {total:g} CPUs, "
    )
    assert expected in lines[0], lines[0]
    # The free count is read when the run gives up: the held CPUs are gone, and so may be a fraction
    # the run's own driver-side tasks still hold (CI once read 1.5 of the 2 left free). It must show
    # that the free CPUs, not the total, are what blocked the workers.
    found = re.search(r"CPUs, ([0-9.]+) free \(other runs or sweeps hold the rest\)", lines[0])
    assert found is not None, lines[0]
    assert float(found.group(1)) <= free_after < need, lines[0]
    assert lines[0].lstrip().startswith("error:"), lines[0]
