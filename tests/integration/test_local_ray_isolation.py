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
