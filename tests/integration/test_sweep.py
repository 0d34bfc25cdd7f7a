"""A real strategy sweep on the session's Ray head: Tune over Train, ASHA, MLflow parent/child runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_sweep_over_methods_with_asha(ray_head, tuneforge_home: Path):
    cmd = [
        str(Path(sys.executable).parent / "tuneforge"),
        "sweep",
        "jobs/configs/sweep/tiny_cpu.yaml",
        "--name",
        "it-sweep",
        "registry.model_name=sweep-best",
        # The example's shape (3 evaluations = 3 ASHA rungs per trial) at 12 instead of 30 steps: a
        # trial's cost here is mostly Ray Train start-up, so fewer steps keep the test to a few minutes.
        "trainer.max_steps=12",
        "trainer.eval_every=4",
        # One Train worker per trial: what is tested here is Tune (ASHA, child runs, best, Pareto);
        # two-worker trials run in the two tests below, and each worker process costs ~10 s of imports.
        "distributed.num_workers=1",
        "--json",
    ]
    out = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    trials = s["trials"]
    assert len(trials) >= 6
    assert len({t["method"] for t in trials}) >= 3, trials
    assert any(t["status"] == "early-stopped" for t in trials), trials
    assert all(t["status"] != "failed" for t in trials), trials
    scored = [t for t in trials if t["metric"] is not None]
    assert s["best"]["trial_id"] == min(scored, key=lambda t: t["metric"])["trial_id"]
    assert Path(s["pareto_plot"]).stat().st_size > 0 and s["pareto"]

    client = MlflowClient(f"sqlite:///{tuneforge_home}/mlflow.db")
    parent = client.get_run(s["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{s['parent_run_id']}'"
    )
    assert len(children) == len(trials)
    assert all(c.info.status != "RUNNING" for c in children)
    statuses = {c.data.tags["tuneforge.trial_id"]: c.data.tags["tuneforge.trial_status"] for c in children}
    assert statuses == {t["trial_id"]: t["status"] for t in trials}
    if s["version"]:
        version = client.get_model_version_by_alias("sweep-best", "challenger")
        assert str(version.version) == s["version"]
        # Lineage names the knobs that trained the winner, not the sweep's base job (method: full).
        knobs = json.loads(version.tags["tuneforge.method.knobs"])
        best = s["best"]["params"]
        assert knobs["name"] == s["best"]["method"] == version.tags["tuneforge.method"]
        for key, value in best.items():
            if key.startswith("method.") and key != "method.name":
                assert knobs[key.removeprefix("method.")] == value, (key, knobs, best)
        assert version.tags["tuneforge.sweep_trial_id"] == s["best"]["trial_id"]
        assert version.tags["tuneforge.run_id"] == s["best"]["run_id"]


@pytest.mark.slow  # ~2 min; `make test-all` runs it (mix/budget logic: tests/unit/tune/test_budget.py)
def test_data_mix_sweep_with_token_budget(ray_head, tuneforge_home: Path):
    """A sweep over data-mix shares: each trial trains on its own mix of the once-tokenized sources,
    and the token budget stops the sweep before all samples have run to the end."""
    cmd = [
        str(Path(sys.executable).parent / "tuneforge"),
        "sweep",
        "jobs/configs/sweep/tiny_cpu_mix.yaml",
        "--name",
        "it-mix",
        "search.num_samples=3",
        "search.max_total_tokens=18000",  # a full trial: 8 steps x 1 worker x 8 x 128 = 8k tokens
        "trainer.max_steps=8",
        "trainer.eval_every=4",
        "distributed.num_workers=1",  # two-worker sweep trials: test_ray_job_submit.py's resume test
        "--json",
    ]
    out = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    trials = s["trials"]
    shares = [t["params"]["data.mix.tiny_chat"] for t in trials]
    assert len(set(shares)) == len(trials)
    assert all(
        abs(t["params"]["data.mix.tiny_chat"] + t["params"]["data.mix.tiny_alpaca"] - 1) < 1e-9
        for t in trials
    )
    stopped = [t for t in trials if t["status"] == "early-stopped"]
    assert stopped and all(t["stop_reason"] == "budget" for t in stopped), trials

    client = MlflowClient(f"sqlite:///{tuneforge_home}/mlflow.db")
    children = client.search_runs(
        [client.get_run(s["parent_run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{s['parent_run_id']}'",
    )
    blocks = {c.data.tags["tuneforge.trial_id"]: c.data.params.get("mix_blocks") for c in children}
    started = [b for b in blocks.values() if b]
    assert len(started) >= 2 and len(set(started)) == len(started)  # every mix drew its own blocks
    report = json.loads((Path(s["sweep_dir"]) / "report" / "trials.json").read_text())
    spent = sum(r["train_tokens"] or 0 for r in report)
    full = max(r["train_tokens"] or 0 for r in report)  # one trial run to the end
    assert 18000 <= spent < 18000 + 2 * full  # stopped at the budget, give or take the running trials


@pytest.mark.slow  # ~3 min: four 1-worker preference trials
def test_preference_sweep_searches_objective_and_beta(ray_head, tuneforge_home: Path):
    """Tune over DPO / IPO / SimPO and beta, ranked by held-out reward accuracy (reported every eval)."""
    cmd = [
        str(Path(sys.executable).parent / "tuneforge"),
        "sweep",
        "jobs/configs/sweep/tiny_cpu_dpo.yaml",
        "--name",
        "it-pref-sweep",
        "registry.model_name=pref-sweep-best",
        "trainer.max_steps=10",
        "trainer.eval_every=5",
        "--json",
    ]
    out = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    trials = s["trials"]
    assert len(trials) == 4 and all(t["status"] != "failed" for t in trials), trials
    objectives = {t["params"]["method.objective"] for t in trials}
    assert len(objectives) >= 2 and objectives <= {"dpo", "ipo", "simpo"}, trials
    assert all(0.05 <= t["params"]["method.beta"] <= 0.5 for t in trials)
    scored = [t for t in trials if t["metric"] is not None]
    assert scored and s["best"]["trial_id"] == max(scored, key=lambda t: t["metric"])["trial_id"]
    assert s["best"]["metric"] > 0.5  # the winner prefers the held-out chosen replies
