"""Two tuneforge commands on one machine each start a local Ray instance; they must not meet.

Measured before the fix: a sweep started while ``tuneforge train`` ran in another terminal
deadlocked, because Ray Train's placement-group cleaner (inside the cluster) asked the state API
for "the" cluster and got "Found multiple active Ray instances", then leaked the ended trial's
worker group. Here two processes start their instances at once through ``start_private_instance``
and, from a task inside each, call the state API exactly as the cleaner does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, sys, time
import ray
from ray.util.state import list_actors
from tuneforge.distributed.cluster import start_private_instance

address = start_private_instance({"num_cpus": 1, "log_to_driver": False, "logging_level": "ERROR"})
open(sys.argv[1], "w").write(address)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.2)  # both instances are up at once from here on

@ray.remote
def inside():
    list_actors()  # what the placement-group cleaner does; raises with two instances unisolated
    return os.environ.get("RAY_ADDRESS"), ray.get_runtime_context().gcs_address

print(json.dumps({"address": address, "inside": ray.get(inside.remote())}))
"""


def test_two_local_instances_at_once_stay_apart(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # local mode, not the test head
    env["PYTHONPATH"] = str(REPO / "platform")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"up{i}"), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        import time

        deadline = time.monotonic() + 120
        while not all((tmp_path / f"up{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "the instances did not start"
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
            time.sleep(0.2)
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    results = []
    for p, (stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    a, b = results
    assert a["address"] != b["address"]
    for r in results:  # every process of an instance is pointed at its own instance
        seen, connected = r["inside"]
        assert seen == r["address"]
        assert connected.rsplit(":", 1)[1] == r["address"].rsplit(":", 1)[1]


@pytest.mark.slow  # ~3 min: three commands' Ray instances and worker imports share two cores
def test_a_sweep_and_two_trains_started_at_once_all_finish(tmp_path: Path):
    """What deadlocked before: the README's sweep while two ``train`` runs start in other terminals.

    All three use one workspace (one MLflow store, one run directory root), as a user's would; each
    starts its own local Ray instance. All finish, the trains in directories of their own (they are
    started within the same second, so their timestamped names collide), no trial fails, and no Ray
    instance outlives its command.
    """
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["TUNEFORGE_HOME"] = str(tmp_path / "home")
    tf = str(Path(sys.executable).parent / "tuneforge")
    small = ["trainer.max_steps=4", "trainer.eval_every=2", "distributed.num_workers=1", "--json"]
    sweep = [tf, "sweep", "jobs/configs/sweep/tiny_cpu.yaml", "search.num_samples=2", *small]
    train = [tf, "train", "jobs/configs/finetune/tiny_cpu.yaml", *small]
    before = _ray_temp_dirs()
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in (sweep, train, train)
    ]
    try:
        outs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            p.kill()
    summaries = []
    for p, (stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, f"{p.args[1]} failed:\n{stderr[-3000:]}"
        assert "Traceback" not in stderr, stderr[-3000:]
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))
    s, a, b = summaries
    assert len(s["trials"]) == 2 and all(t["status"] != "failed" for t in s["trials"]), s["trials"]
    assert a["run_dir"] != b["run_dir"] and a["run_id"] != b["run_id"]
    assert {a["version"], b["version"]} == {"1", "2"}  # both registered, one version each
    for run in (a, b):
        assert json.loads((Path(run["run_dir"]) / "run.json").read_text())["run_id"] == run["run_id"]
    assert _live_raylets(_ray_temp_dirs() - before) == [], "a command left its Ray instance running"


def _ray_temp_dirs() -> set[str]:
    return {str(p) for p in Path("/tmp").glob("tfray-*")}


def _live_raylets(temp_dirs: set[str]) -> list[str]:
    """Command lines of raylet processes that belong to one of ``temp_dirs``."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith("raylet") and any(d in " ".join(args) for d in temp_dirs):
            alive.append(" ".join(args)[:200])
    return alive
