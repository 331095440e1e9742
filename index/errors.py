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


class QuestionError(CitebotError):
    """The question is empty or unusable."""


class ModelError(CitebotError):
    """The embedding model cannot be loaded."""


class DataDirError(CitebotError):
    """The data directory (``CITEBOT_DATA_DIR``) cannot hold indexes: a file, not creatable or not writable."""


class IndexCorruptError(Exception):
    """A stored index is damaged or incomplete; callers rebuild it."""
