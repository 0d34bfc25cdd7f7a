"""A fast check that the MLflow tracking store can be reached, made before any work starts.

MLflow retries an unreachable server with exponential backoff (minutes before it gives up), so a
wrong ``tracking.uri`` looked like a hang. Here the store is probed once with a short timeout and
a failure is one line naming the URI (password redacted) and the setting it came from.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from tuneforge.config import ConfigError
from tuneforge.tracking.store import redact_uri, sqlite_db_path

PROBE_TIMEOUT_S = 3.0
_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_FALLBACK_SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def _known_schemes() -> tuple[str, ...]:
    """URI schemes MLflow has a tracking store for (plugins included), or a built-in list."""
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        return tuple(sorted(_tracking_store_registry._registry))
    except (ImportError, AttributeError):  # private API: fall back to the stock schemes
        return _FALLBACK_SCHEMES


@contextmanager
def _quick_mlflow_requests(timeout: float) -> Iterator[None]:
    """MLflow's HTTP client without retries and with a short timeout, for one probe request."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(timeout, 1)))}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__


def _check_server(uri: str, shown: str, field: str, timeout: float) -> None:
    """An HTTP(S) tracking server: answers /health within ``timeout``, then one MLflow API call works."""
    parts = urlsplit(uri)  # urllib reads userinfo (user:password@) as part of the host: probe without it
    probe = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    try:
        with urllib.request.urlopen(probe.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: reachable (a proxy may not serve /health); the API call below decides
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the MLflow tracking server at {shown} ({_reason(exc)} within {timeout:g} s); "
            "start it, fix the URI, or unset it to use the local sqlite store",
            field=field,
        ) from None
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with _quick_mlflow_requests(timeout):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"the server at {shown} does not answer as an MLflow tracking server: {first[:300]}",
            field=field,
        ) from None
    except Exception as exc:  # requests' own errors (retries exhausted, SSL) without importing it
        raise ConfigError(
            f"the server at {shown} does not answer as an MLflow tracking server: {_reason(exc)[:300]}",
            field=field,
        ) from None


def _check_socket(host: str, port: int, shown: str, field: str, timeout: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the tracking database at {shown} ({_reason(exc)} within {timeout:g} s)",
            field=field,
        ) from None


def check_tracking_uri(uri: str, field: str = "tracking.uri", timeout: float = PROBE_TIMEOUT_S) -> None:
    """Refuse a tracking URI that names no MLflow store or that cannot be reached within ``timeout``.

    ``field`` names where the URI came from (``tracking.uri`` or ``MLFLOW_TRACKING_URI``). Checked:
    the scheme is one MLflow knows; http(s) servers answer; database servers accept a connection;
    a sqlite file's directory exists. Never prints the password.
    """
    shown = redact_uri(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0].lower()  # postgresql+psycopg2 -> postgresql
    known = _known_schemes()
    if scheme not in known:
        listed = ", ".join(s for s in known if s)
        raise ConfigError(
            f"'{shown}': unknown tracking URI scheme {scheme!r}; expected one of {listed}", field=field
        )
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"'{shown}': no host in the URI", field=field)
        _check_server(uri, shown, field, timeout)
    elif scheme == "sqlite":
        db = sqlite_db_path(uri)
        if db is not None and not db.resolve().parent.is_dir():
            raise ConfigError(
                f"'{shown}': the database's directory {db.resolve().parent} does not exist", field=field
            )
    elif scheme in _DB_PORTS and parts.hostname:
        _check_socket(parts.hostname, parts.port or _DB_PORTS[scheme], shown, field, timeout)


__all__ = ["PROBE_TIMEOUT_S", "check_tracking_uri"]
