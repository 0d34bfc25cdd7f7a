"""Map the library's input errors to one line + exit 1; anything else is a real bug and propagates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def user_errors(fail: Callable[[str], None]) -> Iterator[None]:
    """Turn ConfigError/DataError/missing files into ``fail(message)``.

    Errors raised inside Ray workers arrive wrapped; their root cause is unwrapped when it is one
    of ours, so a bad record found during tokenization still reads as one line.
    """
    from tuneforge.config import ConfigError
    from tuneforge.data import DataError

    try:
        yield
    except (ConfigError, DataError) as e:
        fail(str(e))
    except FileNotFoundError as e:
        fail(str(e) if not e.filename else f"{e.filename}: file not found")
    except ValueError as e:
        if type(e) is ValueError:  # our own plain validation errors (messages name the field)
            fail(str(e))
        raise


def release_ray() -> None:
    """Shut Ray down (if this process started or joined it) so no log line follows our output."""
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
