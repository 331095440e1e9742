"""Standard output as Unix tools treat it: a failed write is one error line, a closed pipe a quiet exit.

Everything the CLI writes to standard output goes through :func:`stdout` (plain lines) or
:func:`terminal` (rich). A write that fails with a full disk or a bad descriptor becomes
:class:`OutputError`; a reader that went away (``| head -1``) stays a ``BrokenPipeError``, which
``citebot`` ends on quietly. Either way :func:`discard_stdout` then keeps Python's final flush quiet.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from rich.console import Console

#: Exit code for a user mistake (bad input, bad setting), as argparse uses.
USAGE_ERROR = 2


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor); the message is one line."""


class GuardedStream:
    """A text stream whose failed writes raise :class:`OutputError` (but a broken pipe stays a ``BrokenPipeError``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text``; return the number of characters written."""
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _failed(exc) from None

    def flush(self) -> None:
        """Flush the stream."""
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _failed(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _failed(exc: OSError) -> OutputError:
    return OutputError(f"cannot write to standard output ({exc.strerror or type(exc).__name__})")


def stdout() -> GuardedStream:
    """Return standard output, guarded (see :class:`GuardedStream`)."""
    if sys.stdout is None:
        raise OutputError("standard output is closed; nothing could be written")
    return GuardedStream(sys.stdout)


class _Terminal(Console):
    """A rich console that lets a broken pipe propagate (rich's default exits with code 1 by itself)."""

    def on_broken_pipe(self) -> None:
        """Raise ``BrokenPipeError`` for ``citebot``'s main to end quietly."""
        raise BrokenPipeError


def terminal(file: GuardedStream) -> Console:
    """Return a rich console writing to ``file``, never parsing highlights into the article's text."""
    return _Terminal(file=file, highlight=False)  # type: ignore[arg-type]  # a TextIO in all but name


def stderr_console() -> Console:
    """Return a rich console on standard error (progress, spinners), never highlighting text."""
    return Console(stderr=True, highlight=False)


def discard_stdout() -> None:
    """Point file descriptor 1 at ``/dev/null``, so output still buffered is dropped, not an error at exit."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
