"""MLflow glue: store location, runs, params, metrics, models, and the registry (:class:`TrackingClient`).

The only package that imports MLflow: everything else in tuneforge reaches the tracking store
through these names. Imports neither Ray nor other tuneforge packages (only the leaf
``tuneforge.paths``), so Ray workers can use :func:`log_metrics` cheaply; torch/transformers are
imported only by the model functions that need them.
"""

from tuneforge.tracking.client import MetricPoint, RunRecord, TrackingClient, VersionRecord
from tuneforge.tracking.models import (
    LoggedModel,
    download_adapter,
    load_hf_model,
    log_hf_model,
    pip_requirements,
    register_model,
)
from tuneforge.tracking.redact import redact_mapping, redact_value
from tuneforge.tracking.store import (
    end_run,
    experiment_id_for,
    flatten_params,
    home_dir,
    log_artifacts,
    log_dict_artifact,
    log_metrics,
    log_params_flat,
    redact_uri,
    reopen_run,
    resolve_tracking_uri,
    set_tags,
    sqlite_db_path,
    start_run,
    ui_command,
    use_store,
)

__all__ = [
    "LoggedModel",
    "MetricPoint",
    "RunRecord",
    "TrackingClient",
    "VersionRecord",
    "download_adapter",
    "end_run",
    "experiment_id_for",
    "flatten_params",
    "home_dir",
    "load_hf_model",
    "log_artifacts",
    "log_dict_artifact",
    "log_hf_model",
    "log_metrics",
    "log_params_flat",
    "pip_requirements",
    "redact_mapping",
    "redact_uri",
    "redact_value",
    "register_model",
    "reopen_run",
    "resolve_tracking_uri",
    "set_tags",
    "sqlite_db_path",
    "start_run",
    "ui_command",
    "use_store",
]
