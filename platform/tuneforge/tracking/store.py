"""Where tuneforge's MLflow data lives, and the run/param/metric/artifact calls the driver makes.

MLflow 3.17's plain file store (``./mlruns``) refuses to start, and the model registry needs a
database anyway, so the default store is a sqlite file under ``$TUNEFORGE_HOME`` with its artifacts
in a sibling folder: one self-contained directory that ``mlflow ui`` can open. (``$TUNEFORGE_HOME``
itself is :func:`tuneforge.paths.tuneforge_home`.)

Everything that takes a ``run_id`` goes through ``MlflowClient`` rather than the fluent API, so it
works in processes that have no active run (Ray workers, a driver that resumed a run).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

from tuneforge.paths import tuneforge_home
from tuneforge.tracking.redact import redact_mapping, redact_uri
from tuneforge.tracking.sqlite_init import ensure_sqlite_schema

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
_SQLITE_PREFIX = "sqlite:///"
_TRUNCATION_MARK = "...[truncated {n} chars]"

# On ending a run against a tracking server MLflow prints "View run <name> at: <tracking URI>/#/...",
# userinfo password included. tuneforge prints its own, redacted, address (``ui_command``) instead.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def home_dir(kind: str, name: str, field: str) -> Path:
    """``<tuneforge_home()>/<kind>/<name>`` (``runs/<run name>``, ``sweeps/<sweep name>``), not created.

    ``name`` comes from a config or the command line and must be one plain directory name: one
    with ``/``, ``\\`` or ``..`` would put the run outside ``<home>/<kind>``, so it is a ValueError
    naming ``field``.
    """
    root = tuneforge_home() / kind
    if not name or name in (".", "..") or any(c in name for c in ("/", "\\", "\0")):
        raise ValueError(
            f"{field}: {name!r} names a directory under {root} and must be a single name "
            "(no '/', '\\' or '..')"
        )
    return root / name


def chosen_tracking_uri(uri: str | None) -> str:
    """Explicit ``uri`` > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<tuneforge_home()>/mlflow.db``, as
    written: the choice alone, for callers that must not create the store (``tuneforge doctor``)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"{_SQLITE_PREFIX}{tuneforge_home() / DB_FILE}"


def resolve_tracking_uri(uri: str | None) -> str:
    """The store ``chosen_tracking_uri`` picks, ready to use.

    A relative sqlite path is made absolute here, once, in the driver: the URI is shipped to Ray
    workers, which would otherwise open (and create) a different, empty database under their cwd.
    """
    chosen = chosen_tracking_uri(uri)
    db_path = sqlite_db_path(chosen)
    if db_path is not None:
        ensure_sqlite_schema(db_path, _artifact_location(chosen))  # two commands on a new store at once
        if not db_path.is_absolute():
            query = chosen.partition("?")[2]
            return f"{_SQLITE_PREFIX}{db_path.resolve()}" + (f"?{query}" if query else "")
    return chosen


def sqlite_db_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute as written), else None."""
    if not uri.startswith(_SQLITE_PREFIX):
        return None
    path = uri[len(_SQLITE_PREFIX) :].partition("?")[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def ui_command(uri: str) -> str:
    """What a user runs to browse this store.

    For a tracking server (http/https) that is just its URL (the UI is already served); for a
    database URI it is an ``mlflow ui`` command. Passwords are redacted because this is printed.
    """
    if uri.startswith(("http://", "https://")):
        return redact_uri(uri)
    return f"mlflow ui --backend-store-uri {shlex.quote(redact_uri(uri))}"


def _artifact_location(uri: str) -> str | None:
    """``<db dir>/artifacts`` for a sqlite store, so artifacts stay next to the database.

    Without it MLflow would write ``./mlruns`` under whatever cwd the driver has. Servers and
    other databases keep their own configured artifact root (None).
    """
    db_path = sqlite_db_path(uri)
    if db_path is None:
        return None
    return (db_path.resolve().parent / ARTIFACTS_DIR).as_uri()


def experiment_id_for(uri: str, experiment: str) -> str:
    """Get or create ``experiment``; tolerates a concurrent creator (two drivers, one store)."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=_artifact_location(uri))
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def start_run(
    uri: str,
    experiment: str,
    run_name: str | None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> str:
    """Point this process at ``uri``, open a run in ``experiment`` and return its run_id.

    With ``run_id`` the existing run is reopened (a resumed training run keeps one MLflow run).
    The run stays active in this process (so ``mlflow.log_*`` and model logging attach to it);
    the caller closes it with :func:`end_run`, passing FAILED/KILLED when training did not finish.
    """
    if run_id is not None:
        return reopen_run(uri, run_id)
    use_store(uri)
    experiment_id = experiment_id_for(uri, experiment)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def use_store(uri: str) -> None:
    """Make ``uri`` this process's MLflow store.

    ``models:/`` and ``runs:/`` references (:func:`tuneforge.tracking.load_hf_model`,
    :func:`tuneforge.tracking.download_adapter`) and model logging resolve against the process's
    store, not against any URI passed around; a command that reads models sets it once, first.
    """
    mlflow.set_tracking_uri(uri)


def reopen_run(uri: str, run_id: str) -> str:
    """Make the existing run ``run_id`` this process's active run again, RUNNING, and return its id.

    A resumed training run or sweep keeps one MLflow run, so its params, metrics, artifacts and
    child runs stay together. Close it with :func:`end_run` as after :func:`start_run`.
    """
    use_store(uri)
    return mlflow.start_run(run_id=run_id).info.run_id


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    """Set (or overwrite) tags on ``run_id``; unlike params, tags may change over a run's life."""
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def end_run(status: str = "FINISHED") -> None:
    """End this process's active run (no-op when none) with an MLflow ``RunStatus`` name."""
    mlflow.end_run(status=status)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _param_value(value: Any) -> str:
    """String form of a param; over-long values are cut and say so, instead of failing the run."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    if len(text) <= MAX_PARAM_VAL_LENGTH:
        return text
    # Reserve room for the longest possible marker so the result is within the limit.
    keep = MAX_PARAM_VAL_LENGTH - len(_TRUNCATION_MARK.format(n=len(text)))
    return text[:keep] + _TRUNCATION_MARK.format(n=len(text) - keep)


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``{"trainer": {"lr": 1e-4}}`` -> ``{"trainer.lr": "0.0001"}``, values made MLflow-safe.

    Secrets are redacted first (``tracking/redact.py``): a password in a URI, a ``*_token`` value.
    """
    return {key: _param_value(value) for key, value in _flatten(redact_mapping(params))}


def log_params_flat(run_id: str, params: dict) -> None:
    """Log a nested config as dotted params, in batches of MLflow's per-request limit.

    Values are redacted (:func:`flatten_params`), so no caller can log a secret by forgetting to.
    Params are immutable in MLflow: logging a key again with a different value raises, which is
    the right signal that a resumed run was given a different config.
    """
    client = mlflow.MlflowClient()
    items = [Param(key, value) for key, value in flatten_params(params).items()]
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])


@lru_cache(maxsize=8)
def _client(uri: str) -> mlflow.MlflowClient:
    """One client per store and process: creating one opens (and checks) the database."""
    return mlflow.MlflowClient(uri)


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log one step of metrics to ``run_id`` from any process, active run or not (Ray workers).

    Non-finite values (a NaN loss, an inf perplexity) are skipped rather than raised on: a bad
    number must not kill a training run, and MLflow charts them poorly anyway.
    """
    timestamp = int(time.time() * 1000)
    batch = [
        Metric(key, value, timestamp, step)
        for key, raw in metrics.items()
        if math.isfinite(value := float(raw))
    ]
    client = _client(uri)
    for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch[start : start + MAX_METRICS_PER_BATCH])


def log_dict_artifact(run_id: str, obj: dict, artifact_file: str) -> None:
    """Store ``obj``, redacted, as a JSON/YAML file (by extension) in the run's artifacts (the config)."""
    mlflow.MlflowClient().log_dict(run_id, redact_mapping(obj), artifact_file)


def log_artifacts(run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None) -> None:
    """Copy a local directory into the run's artifacts under ``artifact_path``."""
    mlflow.MlflowClient().log_artifacts(run_id, os.fspath(local_dir), artifact_path)
