"""Locking: one exclusive, cross-process lock per path (filelock), with a clear error when it is not free in time.

Several citebot processes may share a data directory (a console, ``citebot ask`` in a script, the Telegram
bot). Whatever must happen once at a time (building an index, replacing it on disk) runs inside
:func:`hold`. The lock is re-entrant within a process: a function holding it may call another that takes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from index.errors import CitebotError

log = logging.getLogger(__name__)

#: How long to wait for another process by default: an index of a 5 MB article takes minutes to build.
LOCK_TIMEOUT = 600.0


class LockTimeoutError(CitebotError):
    """Another process held a lock for longer than we would wait."""


def lock_path(path: Path) -> Path:
    """Return the lock file that guards ``path``: a hidden ``.NAME.lock`` beside it."""
    return path.parent / f".{path.name}.lock"


def file_lock(path: Path) -> FileLock:
    """Return the process-wide (re-entrant) lock guarding ``path``; acquire it with :func:`hold`."""
    return FileLock(lock_path(path), is_singleton=True)


@contextmanager
def hold(path: Path, what: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock guarding ``path`` for the block, waiting up to ``timeout`` seconds for other processes.

    ``what`` names the work for the log and the error ("building the index").

    Raises:
        LockTimeoutError: when another process holds it longer; the message names the lock file.
    """
    lock = file_lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another citebot process %s at %s", what, path)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise LockTimeoutError(
                f"another citebot process has been {what} at {path} for over {timeout:.0f} s; "
                f"try again later, or delete {lock_path(path)} if no citebot process is running"
            ) from None
    try:
        yield
    finally:
        lock.release()
