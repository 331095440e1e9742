"""The refusal every route of ``citebot serve`` answers with: a status, a one-line message and a kind."""

from __future__ import annotations


class HTTPError(Exception):
    """A request refused: its status, its one-line message and its kind (the ``citebot_errors_total`` label)."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
