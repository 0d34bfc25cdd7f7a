"""Create a fresh sqlite MLflow store's tables once, under a file lock.

MLflow creates its schema (an alembic migration chain) the first time a process opens an empty
database. Two tuneforge commands started at once on a new workspace both did, and the second died
inside the migration ("duplicate column name: step") with a traceback. The first command to get
the lock creates the tables; the others wait for it and then find them.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

_READY: set[Path] = set()


def ensure_sqlite_schema(db_path: Path, artifact_root: str | None) -> None:
    """Make ``db_path`` a complete MLflow store before anything else in this process opens it."""
    db_path = db_path.resolve()
    if db_path in _READY or not db_path.parent.is_dir():
        return  # a missing directory is the tracking preflight's to report, in one line
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    lock = db_path.with_name(db_path.name + ".init-lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            store = SqlAlchemyStore(f"sqlite:///{db_path}", artifact_root)  # creates missing tables
            store.engine.dispose()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    _READY.add(db_path)


__all__ = ["ensure_sqlite_schema"]
