"""Exceptions raised by the citebot library.

Every error a user can cause (a bad article, an empty question, an unknown
model) is a :class:`CitebotError`, so front ends can print ``str(error)`` as a
one-line message instead of a traceback.
"""

from __future__ import annotations


class CitebotError(ValueError):
    """A problem with the user's input or configuration; the message is one line."""


class ArticleError(CitebotError):
    """The article cannot be read: missing, empty, binary, not UTF-8 or too large."""


class FetchError(CitebotError):
    """A URL cannot be fetched or is not an article: refused address, time-out, too large, HTTP error, paywall."""


class FetchStatusError(FetchError):
    """The server answered with an HTTP error status; ``status`` holds it (404, 503...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class QuestionError(CitebotError):
    """The question is empty or unusable."""


class ModelError(CitebotError):
    """The embedding model cannot be loaded."""


class DataDirError(CitebotError):
    """The data directory (``CITEBOT_DATA_DIR``) cannot hold indexes: a file, not creatable or not writable."""


class IndexCorruptError(Exception):
    """A stored index is damaged or incomplete; callers rebuild it."""


class LibraryError(CitebotError):
    """The library cannot be used as asked: an unknown article id, a damaged catalog, an unusable data directory."""


class Stopped(CitebotError):
    """A change was stopped at a safe point because its caller asked (a front end shutting down); nothing of it
    was stored."""
