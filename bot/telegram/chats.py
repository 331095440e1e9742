"""What the Telegram bot remembers per chat, in SQLite beside the library's catalog (``bot.sqlite3``).

Two things: each chat's scope (the article ids it asks, or the whole library), and, for the last
:data:`KEEP_ANSWERS` answers of each chat, which question and article they belong to (so a reply to
an answer asks a follow-up within its article). Every write is one transaction: a kill at any moment
loses at most the write in flight. No pickle: plain rows, the scope as a JSON list of integers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: The file, in ``CITEBOT_DATA_DIR``.
STATE_FILE = "bot.sqlite3"
#: Answers remembered per chat (older ones are forgotten; a reply to one is then an ordinary question).
KEEP_ANSWERS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scope (
    chat_id INTEGER PRIMARY KEY,
    articles TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    question TEXT NOT NULL,
    article INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    scope TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
"""


@dataclass(frozen=True)
class AnswerContext:
    """What one of the bot's answers was about.

    Attributes:
        question: the question it answered (as searched, follow-ups expanded).
        article: the id of the article its first passage came from.
        fingerprint: that article's fingerprint when the answer was given.
        scope: the article ids searched (``None``: the whole library).
    """

    question: str
    article: int
    fingerprint: str
    scope: tuple[int, ...] | None


class ChatState:
    """The per-chat state in ``path`` (an SQLite file, created if missing; ``":memory:"`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def scope(self, chat_id: int) -> tuple[int, ...] | None:
        """Return the article ids ``chat_id`` asks, or ``None`` for the whole library."""
        with self._lock:
            row = self._db.execute("SELECT articles FROM scope WHERE chat_id = ?", (chat_id,)).fetchone()
        return _ids(row[0]) if row else None

    def set_scope(self, chat_id: int, articles: tuple[int, ...] | None) -> None:
        """Make ``chat_id`` ask ``articles`` (``None``: the whole library)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if articles is None:
                self._db.execute("DELETE FROM scope WHERE chat_id = ?", (chat_id,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO scope (chat_id, articles) VALUES (?, ?)",
                    (chat_id, json.dumps(sorted(set(articles)))),
                )

    def remember(self, chat_id: int, message_id: int, context: AnswerContext) -> None:
        """Remember what answer ``message_id`` was about; forget the chat's answers beyond :data:`KEEP_ANSWERS`."""
        scope = None if context.scope is None else json.dumps(list(context.scope))
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (chat_id, message_id, context.question, context.article, context.fingerprint, scope, time.time()),
            )
            self._db.execute(
                "DELETE FROM answers WHERE chat_id = ? AND message_id NOT IN "
                "(SELECT message_id FROM answers WHERE chat_id = ? ORDER BY message_id DESC LIMIT ?)",
                (chat_id, chat_id, KEEP_ANSWERS),
            )

    def recall(self, chat_id: int, message_id: int) -> AnswerContext | None:
        """Return what answer ``message_id`` of ``chat_id`` was about, or ``None`` when it is not remembered."""
        with self._lock:
            row = self._db.execute(
                "SELECT question, article, fingerprint, scope FROM answers WHERE chat_id = ? AND message_id = ?",
                (chat_id, message_id),
            ).fetchone()
        if row is None:
            return None
        return AnswerContext(row[0], int(row[1]), row[2], None if row[3] is None else _ids(row[3]))

    def answers(self, chat_id: int) -> int:
        """Return how many answers of ``chat_id`` are remembered."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers WHERE chat_id = ?", (chat_id,)).fetchone()[0])


def _ids(raw: str) -> tuple[int, ...]:
    """Return the article ids stored as a JSON list (anything else reads as no ids)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(int(v) for v in value if isinstance(v, int)) if isinstance(value, list) else ()
