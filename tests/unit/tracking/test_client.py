"""tuneforge.tracking's face for the rest of tuneforge, against a real sqlite MLflow store (no mocks).

Also the rule that makes the face worth having: no module outside ``tuneforge/tracking`` imports
MLflow, and ``tuneforge/paths.py`` is a leaf.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import mlflow
import pytest

from tuneforge.paths import tuneforge_home
from tuneforge.tracking import (
    TrackingClient,
    end_run,
    reopen_run,
    resolve_tracking_uri,
    start_run,
    use_store,
)
from tuneforge.tracking.client import PARENT_TAG

PACKAGE = Path(__file__).resolve().parents[3] / "platform" / "tuneforge"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh TUNEFORGE_HOME and its default sqlite store; the process's MLflow state is reset after."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    # setenv (not delenv) so monkeypatch restores the variable that set_tracking_uri writes.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    uri = resolve_tracking_uri(None)
    yield uri
    mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _versions(uri: str, name: str, run_ids: list[str]) -> list[str]:
    """Register one version of ``name`` per run (plain artifact sources: no model needs logging)."""
    raw = mlflow.MlflowClient(uri)
    raw.create_registered_model(name)
    return [
        str(raw.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version)
        for run_id in run_ids
    ]


def test_child_runs_nest_under_their_parent(store: str) -> None:
    client = TrackingClient(store)
    parent = client.create_run("sweeps", name="sweep-1", tags={"tuneforge.sweep": "s1"})
    experiment = client.experiment_of(parent)
    first = client.create_child_run(parent, "trial-a", {"tuneforge.trial_id": "a"})
    second = client.create_child_run(parent, "trial-b", {"tuneforge.trial_id": "b"}, experiment_id=experiment)
    client.log_params(first, {"method.name": "lora", "hf_token": "hf_abcdef"})
    client.create_run("sweeps", name="unrelated")

    children = {run.name: run for run in client.child_runs(parent)}
    assert set(children) == {"trial-a", "trial-b"}
    assert {run.run_id for run in children.values()} == {first, second}
    a = children["trial-a"]
    assert a.experiment_id == experiment and a.status == "RUNNING"
    assert a.tags[PARENT_TAG] == parent and a.tags["tuneforge.trial_id"] == "a"
    assert a.params == {"method.name": "lora", "hf_token": "***"}  # redacted by the face itself
    assert client.child_runs(first) == []

    # The experiment was created next to the database, not in ./mlruns.
    location = mlflow.MlflowClient(store).get_experiment(experiment).artifact_location
    assert location == (tuneforge_home() / "artifacts").as_uri()


def test_reopen_a_finished_run(store: str) -> None:
    run_id = start_run(store, "exp", "train-1")
    end_run("FINISHED")
    client = TrackingClient(store)
    assert client.find_run(run_id).status == "FINISHED"

    assert reopen_run(store, run_id) == run_id
    assert mlflow.active_run().info.run_id == run_id
    assert client.find_run(run_id).status == "RUNNING"
    end_run("KILLED")
    run = client.find_run(run_id)
    assert run.status == "KILLED" and run.name == "train-1"
    assert client.find_run("0" * 32) is None


def test_close_if_running_closes_only_runs_left_open(store: str) -> None:
    client = TrackingClient(store)
    parent = client.create_run("sweeps", name="sweep")
    stopped = client.create_child_run(parent, "trial-stopped")
    done = client.create_child_run(parent, "trial-done")
    client.finish_run(done)

    assert client.close_if_running(stopped, "KILLED") is True
    assert client.close_if_running(done, "KILLED") is False
    assert client.close_if_running("0" * 32, "KILLED") is False
    statuses = {run.name: run.status for run in client.child_runs(parent)}
    assert statuses == {"trial-stopped": "KILLED", "trial-done": "FINISHED"}


def test_tags_metrics_and_artifacts(store: str) -> None:
    client = TrackingClient(store)
    run_id = client.create_run("tuneforge-evals", tags={"tuneforge.model_ref": "models:/m/1"})
    client.set_tags(run_id, {"tuneforge.model_version": "m/1"})
    client.set_tags(run_id, {"tuneforge.model_version": "m/2"})  # tags may be overwritten
    client.log_metrics(run_id, {"rougeL_mean": 0.5, "perplexity": math.inf})
    for step, loss in ((2, 1.0), (0, 3.0), (1, 2.0)):
        client.log_metrics(run_id, {"train_loss": loss}, step=step)
    client.log_dict(run_id, {"uri": "http://me:s3cret@host/x", "n": 3}, "decision.json")
    client.finish_run(run_id)

    run = client.find_run(run_id)
    assert run.status == "FINISHED" and run.tags["tuneforge.model_version"] == "m/2"
    assert [(p.step, p.value) for p in client.metric_history(run_id, "train_loss")] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
    ]
    # Kept, not dropped (sqlite stores inf as the largest float).
    assert client.metric_history(run_id, "perplexity")[0].value > 1e300
    decision = tuneforge_home() / "artifacts" / run_id / "artifacts" / "decision.json"
    assert json.loads(decision.read_text()) == {"uri": "http://me:***@host/x", "n": 3}


def test_registry_aliases(store: str) -> None:
    client = TrackingClient(store)
    runs = [client.create_run("exp", name=f"r{i}") for i in range(3)]
    v1, v2, v3 = _versions(store, "m", runs)

    assert client.aliases("m") == {} and client.aliases("nope") is None
    assert client.alias_version("m", "champion") is None and client.version_by_alias("m", "champion") is None
    client.set_alias("m", "champion", v1)
    client.set_alias("m", "challenger", v2)
    client.set_alias("m", "champion", v3)  # moves
    assert client.alias_version("m", "champion") == v3
    assert client.version_by_alias("m", "challenger").run_id == runs[1]
    assert client.aliases("m") == {"champion": v3, "challenger": v2}

    client.delete_alias("m", "challenger")
    client.delete_alias("m", "challenger")  # not set: nothing happens
    client.delete_alias("nope", "challenger")
    assert client.aliases("m") == {"champion": v3}

    assert [v.version for v in client.versions("m")] == [v3, v2, v1]  # newest first
    assert [v.version for v in client.versions("m", run_id=runs[1])] == [v2]
    assert client.versions("nope") == []
    assert client.version("m", v1).run_id == runs[0]
    assert client.version("m", "99") is None and client.version("nope", "1") is None


def test_version_tags(store: str) -> None:
    client = TrackingClient(store)
    (v1,) = _versions(store, "tagged", [client.create_run("exp")])
    client.set_version_tags(
        "tagged", v1, {"tuneforge.promotion": "rejected", "tuneforge.eval.eval_loss": "1.5"}
    )
    client.set_version_tags("tagged", v1, {"tuneforge.promotion": "promoted"})
    client.set_alias("tagged", "champion", v1)
    expected = {"tuneforge.promotion": "promoted", "tuneforge.eval.eval_loss": "1.5"}
    assert client.version("tagged", v1).tags == expected
    assert client.version_by_alias("tagged", "champion").tags == expected
    assert client.versions("tagged")[0].tags == expected


def test_none_means_the_process_store(store: str) -> None:
    use_store(store)
    assert TrackingClient(None).uri == store


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import``/``from ... import`` names, anywhere in the file (lazy ones too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (  # importlib.import_module("mlflow...") / __import__("mlflow...")
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_only_tracking_imports_mlflow() -> None:
    offenders = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, PACKAGE
    for path in files:
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "tracking":
            continue
        for line, module in _imported_modules(ast.parse(path.read_text(), str(path))):
            if module == "mlflow" or module.startswith("mlflow."):
                offenders.append(f"tuneforge/{rel}:{line} imports {module}")
    assert not offenders, "go through tuneforge.tracking (TrackingClient) instead:\n" + "\n".join(offenders)


def test_paths_is_a_leaf() -> None:
    modules = {module for _, module in _imported_modules(ast.parse((PACKAGE / "paths.py").read_text()))}
    assert modules <= {"__future__", "os", "pathlib"}, modules
