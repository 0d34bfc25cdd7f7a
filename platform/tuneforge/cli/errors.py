"""Map the library's input errors to one line + exit 1; anything else is a real bug and propagates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tuneforge.cli._common import fail as fail_and_exit
from tuneforge.errors import user_errors as library_user_errors
from tuneforge.errors import worker_group_message
from tuneforge.frontend import release_ray


@contextmanager
def user_errors(fail: Callable[[str], None] = fail_and_exit) -> Iterator[None]:
    """Turn the library's input errors into ``fail(message)`` (default: one line, exit 1).

    The mapping is ``tuneforge.errors.user_errors``, shared with the ``jobs/*.py`` scripts; this
    wrapper only supplies the CLI's ``fail``.
    """
    with library_user_errors(fail):
        yield


__all__ = ["release_ray", "user_errors", "worker_group_message"]
