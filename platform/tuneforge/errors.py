"""Known bad input -> one line and exit code 1, for every front end (the CLI and the jobs/*.py scripts).

``user_errors(fail)`` maps the library's input errors (config, data, missing files, a failed run, a
worker group that cannot be placed) to ``fail(message)``; anything else is a real bug and propagates
with its traceback. ``exit_with`` is the ``fail`` of a plain script. Imports of the library happen
inside the functions, so this module is a leaf anyone can import (the CLI adds only its colours).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn


def exit_with(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr (one line, no traceback) and exit 1."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


@contextmanager
def user_errors(fail: Callable[[str], None]) -> Iterator[None]:
    """Turn ConfigError/DataError/TrainingFailed/missing files into ``fail(message)``.

    Errors raised inside Ray workers arrive wrapped; their root cause is unwrapped when it is one
    of ours, so a bad record found during tokenization still reads as one line.
    """
    from tuneforge.config import ConfigError
    from tuneforge.data import DataError
    from tuneforge.training.resume import TrainingFailed

    try:
        yield
    except (ConfigError, DataError, TrainingFailed) as e:
        fail(str(e))
    except FileNotFoundError as e:
        fail(str(e) if not e.filename else f"{e.filename}: file not found")
    except ValueError as e:
        if type(e) is ValueError:  # our own plain validation errors (messages name the field)
            fail(str(e))
        raise
    except Exception as e:
        message = worker_group_message(e)
        if message is None:
            raise
        fail(message)


def worker_group_message(exc: BaseException) -> str | None:
    """The one line for Ray Train's "worker group did not start" (it waited for resources it never got).

    Found by class name anywhere in the chain (``ControllerError.controller_failure``, causes), so
    this module needs no Ray import.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e).__name__ == "WorkerGroupStartupTimeoutError":
            n = getattr(e, "num_workers", "?")
            first = str(e).split(". ", 1)[0]
            return (
                f"distributed: the worker group ({n} workers) could not be placed: {first}; the cluster "
                "lacks the CPUs/GPUs distributed.num_workers x distributed.cpus_per_worker ask for "
                "(busy, or a node lost): free them or lower distributed.num_workers "
                "(wait: RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S)"
            )
        todo += [getattr(e, "controller_failure", None), e.__cause__, e.__context__]
    return None


__all__ = ["exit_with", "user_errors", "worker_group_message"]
