"""Tuning modes through the whole platform: a job whose data is only ``modes:`` entries trains on the
session's Ray head (Ray Data, Ray Train, DeepSpeed), and the result is scored with a mode's metric."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tuneforge.evaluation.evaluate import evaluate
from tuneforge.evaluation.metrics import metrics_for_mode
from tuneforge.registry.resolve import load_model_ref

# ~3 min (one training run on all eleven modes, then every mode's evaluation): `make test-all` runs it.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
MODES = [
    "instruct", "chat", "chat+instruct", "question", "editor", "schedule", "filter",
    "reverse-instruction", "reverse-chat", "diff", "domain",
]  # fmt: skip


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TUNEFORGE, *args], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=timeout
    )


def test_train_on_modes_then_eval_with_the_mode_metric(ray_head, tuneforge_home: Path, tmp_path: Path):
    out = _run(
        "train", "jobs/configs/finetune/tiny_cpu_modes.yaml", "trainer.max_steps=24", "trainer.eval_every=12",
        "registry.model_name=modes-it", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["eval_loss_after"] < s["eval_loss_before"] - 0.5

    built = sorted((Path(s["run_dir"]) / "modes").glob("*/*.jsonl"))
    assert sorted(p.stem for p in built) == sorted(MODES)
    params = MlflowClient(s["tracking_uri"]).get_run(s["run_id"]).data.params
    logged = {params[f"data_stats.sources.train{i}.path"] for i in range(len(MODES))}
    assert logged == {str(p) for p in built}  # every mode's file is a train source of the run

    editor = next(p for p in built if p.stem == "editor")
    held = tmp_path / "editor_eval.jsonl"
    held.write_text("".join(editor.read_text().splitlines(keepends=True)[:6]))
    ev = _run(
        "eval", "models:/modes-it/1", "--mode", "editor", "--data", str(held), "--baselines", "1",
        "--base", str(Path(s["run_dir"]) / "base"), "--json",
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-4000:]
    e = json.loads(ev.stdout.strip().splitlines()[-1])
    metrics = [k for k, v in e.items() if isinstance(v, dict) and "mean" in v]
    assert metrics and all(e[k]["low"] <= e[k]["mean"] <= e[k]["high"] for k in metrics)
    assert set(e["baselines"]) >= {"base_zero_shot", "base_k_shot"}

    # Every mode evaluates with its own metrics (what `tuneforge eval --mode M` runs), on the model
    # registered above; one CLI process per mode would only add start-up.
    mlflow.set_tracking_uri(s["tracking_uri"])  # models:/ resolves against the run's store
    model, tok = load_model_ref("models:/modes-it/1")
    for path in built:
        few = tmp_path / f"{path.stem}_eval.jsonl"
        few.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
        wanted = list(metrics_for_mode(path.stem))
        report = evaluate(model, tok, few, wanted, max_new_tokens=16).summary()
        assert report["n"] == 3, path.stem
        for name in wanted:
            iv = report[name]
            assert math.isnan(iv["mean"]) or iv["low"] <= iv["mean"] <= iv["high"], (path.stem, name, iv)
        assert any(not math.isnan(report[name]["mean"]) for name in wanted), (path.stem, report)
