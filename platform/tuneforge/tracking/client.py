"""The tracking store as the rest of tuneforge uses it: runs outside training, and the model registry.

Only ``tuneforge.tracking`` imports MLflow. The sweep driver, the CLI and the promotion gate go
through :class:`TrackingClient` (and the functions of ``store.py``/``models.py``), which speaks
plain types: ids and version numbers are ``str``, tags and params ``dict[str, str]``, runs and
versions small frozen records instead of MLflow entities. MLflow's conventions (the
``mlflow.parentRunId`` tag that nests a run in the UI, which calls raise for a missing alias,
paging through searches) are therefore decided once, here, and a caller never needs an MLflow
exception type: a lookup that can miss returns ``None``.

Every method takes a ``run_id`` (or a model name) rather than relying on an active run, so it works
from any process: a Ray Tune trial, a CLI command, a second promotion racing the first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from tuneforge.tracking.redact import redact_mapping, redact_value
from tuneforge.tracking.store import experiment_id_for

PARENT_TAG = "mlflow.parentRunId"
"""The tag MLflow's UI nests a run under its parent by; set by :meth:`TrackingClient.create_child_run`."""

RUNNING = "RUNNING"


@dataclass(frozen=True)
class RunRecord:
    """What callers read back about a run: its identity, state and the strings logged on it."""

    run_id: str
    name: str | None
    experiment_id: str
    status: str
    """An MLflow ``RunStatus`` name: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
    tags: dict[str, str]
    params: dict[str, str]


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric."""

    step: int
    value: float
    timestamp_ms: int


@dataclass(frozen=True)
class VersionRecord:
    """A registered model version: its number, the run it was registered from, and its tags."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]


def _run_record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name,
        experiment_id=str(run.info.experiment_id),
        status=str(run.info.status),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
    )


def _version_record(mv: Any) -> VersionRecord:
    return VersionRecord(name=mv.name, version=str(mv.version), run_id=mv.run_id, tags=dict(mv.tags or {}))


def _quote(value: str) -> str:
    """A value for MLflow's search filter language, which has no escape for quotes."""
    if "'" in value:
        raise ValueError(f"{value!r}: a quote cannot appear in an MLflow search filter")
    return f"'{value}'"


class TrackingClient:
    """One tracking store: an already resolved URI (:func:`resolve_tracking_uri`), or None for
    this process's store (the one :func:`use_store`/:func:`start_run` set), which is where
    ``models:/`` references being loaded in this process resolve.

    Cheap to create; one per operation is fine. Nothing here touches this process's *active*
    run (``start_run``/``end_run`` own that), so it is safe to use next to a training run.
    """

    def __init__(self, uri: str | None) -> None:
        self.uri = uri if uri is not None else mlflow.get_tracking_uri()
        self._client = mlflow.MlflowClient(self.uri)

    # -- runs ---------------------------------------------------------------------------------

    def create_run(
        self, experiment: str, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """Open a run in ``experiment`` (by name; created if new) and return its id.

        For records written in one go by a command (an evaluation, a promotion decision): the run
        is not made this process's active run, and the caller closes it with :meth:`finish_run`.
        A new experiment on a sqlite store keeps its artifacts next to the database, not in
        ``./mlruns`` under whatever directory the command ran in.
        """
        experiment_id = experiment_id_for(self.uri, experiment)
        return self._client.create_run(experiment_id, run_name=name, tags=dict(tags or {})).info.run_id

    def create_child_run(
        self,
        parent_run_id: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        *,
        experiment_id: str | None = None,
    ) -> str:
        """Open a run nested under ``parent_run_id`` (a sweep trial under its sweep) and return its id.

        It lands in the parent's experiment, which is looked up unless ``experiment_id`` is given
        (a trial already has it, shipped from the driver). Find these runs again with
        :meth:`child_runs`; close them with :meth:`finish_run` or :meth:`close_if_running`.
        """
        if experiment_id is None:
            experiment_id = self.experiment_of(parent_run_id)
        run_tags = {**dict(tags or {}), PARENT_TAG: parent_run_id}
        return self._client.create_run(experiment_id, run_name=name, tags=run_tags).info.run_id

    def child_runs(self, parent_run_id: str, experiment_id: str | None = None) -> list[RunRecord]:
        """Every run created by :meth:`create_child_run` under ``parent_run_id``, all pages of the search."""
        if experiment_id is None:
            experiment_id = self.experiment_of(parent_run_id)
        found: list[RunRecord] = []
        token: str | None = None
        while True:
            page = self._client.search_runs(
                [experiment_id], f"tags.{PARENT_TAG} = {_quote(parent_run_id)}", page_token=token
            )
            found += [_run_record(run) for run in page]
            token = page.token
            if not token:
                return found

    def experiment_of(self, run_id: str) -> str:
        """The id of the experiment ``run_id`` belongs to (a sweep's trials join their parent's)."""
        return str(self._client.get_run(run_id).info.experiment_id)

    def find_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None when the store has none (a mistyped id from the command line)."""
        try:
            return _run_record(self._client.get_run(run_id))
        except MlflowException:
            return None

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags on a run: unlike params, tags may change after the run ended."""
        for key, value in tags.items():
            self._client.set_tag(run_id, key, value)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log string params, redacted here again so no caller can record a secret by forgetting to.

        Params are immutable in MLflow: logging a key again with another value raises.
        """
        items = [Param(key, str(redact_value(key, value))) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log one set of values (an evaluation's scores) at ``step``, all with one timestamp.

        Unlike the training-time :func:`tuneforge.tracking.log_metrics`, non-finite values are kept:
        a score that came out NaN is a result the record should show, not noise in a loss curve.
        """
        stamp = int(time.time() * 1000)
        batch = [Metric(key, float(value), stamp, step) for key, value in metrics.items()]
        for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=batch[start : start + MAX_METRICS_PER_BATCH])

    def log_dict(self, run_id: str, obj: Mapping[str, Any], artifact_file: str) -> None:
        """Store ``obj``, redacted, as a JSON or YAML artifact of the run (by the file's extension)."""
        self._client.log_dict(run_id, redact_mapping(dict(obj)), artifact_file)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every value logged for ``key`` on the run, in step order (what a progress display polls)."""
        history = self._client.get_metric_history(run_id, key)
        points = [MetricPoint(int(m.step), float(m.value), int(m.timestamp)) for m in history]
        return sorted(points, key=lambda p: (p.step, p.timestamp_ms))

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run this process created, with an MLflow ``RunStatus`` name (FINISHED, FAILED, KILLED)."""
        self._client.set_terminated(run_id, status)

    def close_if_running(self, run_id: str, status: str) -> bool:
        """Close a run whose process stopped without closing it; True when it was still RUNNING.

        A trial ASHA stopped, or one cut off by an interrupt, leaves its run RUNNING forever. The
        state is read again here rather than taken from an earlier search, so a run that finished
        in the meantime keeps its own status.
        """
        run = self.find_run(run_id)
        if run is None or run.status != RUNNING:
            return False
        self._client.set_terminated(run_id, status)
        return True

    # -- model registry -----------------------------------------------------------------------

    def version(self, name: str, version: str) -> VersionRecord | None:
        """Version ``version`` of registered model ``name``, or None when there is no such version."""
        try:
            return _version_record(self._client.get_model_version(name, str(version)))
        except MlflowException:
            return None

    def version_by_alias(self, name: str, alias: str) -> VersionRecord | None:
        """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
        try:
            return _version_record(self._client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def alias_version(self, name: str, alias: str) -> str | None:
        """Just the number behind ``alias`` (``champion``, ``previous``...), or None when unset."""
        found = self.version_by_alias(name, alias)
        return found.version if found is not None else None

    def aliases(self, name: str) -> dict[str, str] | None:
        """``{alias: version}`` of registered model ``name``; None when no model has that name."""
        try:
            model = self._client.get_registered_model(name)
        except MlflowException:
            return None
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def versions(self, name: str, *, run_id: str | None = None) -> list[VersionRecord]:
        """All versions of ``name``, newest first; with ``run_id`` only those registered from that run."""
        query = f"name={_quote(name)}" + (f" and run_id={_quote(run_id)}" if run_id else "")
        found: list[VersionRecord] = []
        token: str | None = None
        while True:
            page = self._client.search_model_versions(query, page_token=token)
            found += [_version_record(mv) for mv in page]
            token = page.token
            if not token:
                return sorted(found, key=lambda v: -int(v.version))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (moving it if set): how the gate names champion and challenger."""
        self._client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; nothing happens when it is not set (a promotion that had no challenger)."""
        try:
            self._client.delete_registered_model_alias(name, alias)
        except MlflowException:
            pass

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set tags on a version: the registry records its own history (decisions, evals, rollbacks)."""
        for key, value in tags.items():
            self._client.set_model_version_tag(name, str(version), key, value)


__all__ = ["PARENT_TAG", "MetricPoint", "RunRecord", "TrackingClient", "VersionRecord"]
