"""What the Telegram bot remembers per chat, in SQLite beside the library's catalog (``bot.sqlite3``).

Two things: each chat's scope (the article ids it asks, or the whole library), and, for the last
:data:`KEEP_ANSWERS` answers of each chat, which question and article they belong to (so a reply to
an answer asks a follow-up within its article) and which messages a long answer takes (so Next match
replaces all of them). Every write is one transaction: a kill at any moment loses at most the write in
flight. No pickle: plain rows, the scope as a JSON list of integers.

The chat state is a convenience, never a reason not to answer: a file that cannot be opened at start-up is a
one-line :class:`~index.errors.CitebotError`; a file damaged while the bot runs reads as empty (every chat asks
the whole library, replies are ordinary questions) and writes to it are skipped, said once in the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from index.errors import CitebotError

log = logging.getLogger("citebot.telegram")
T = TypeVar("T")

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
    parts TEXT,
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
        parts: the ids of the messages before this one that show the same answer (one too long for a message).
    """

    question: str
    article: int
    fingerprint: str
    scope: tuple[int, ...] | None
    parts: tuple[int, ...] = ()


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


class ChatState:
    """The per-chat state in ``path`` (an SQLite file, created if missing; ``":memory:"`` for tests).

    Raises:
        CitebotError: when ``path`` cannot be opened as the chat state (a directory, another kind of file).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        #: Whether the file failed (damaged or unreadable): it is then left alone until a restart.
        self.damaged = False
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
            if "parts" not in columns:  # a chat state written before answers kept their parts
                self._db.execute("ALTER TABLE answers ADD COLUMN parts TEXT")
        except sqlite3.Error as exc:
            raise CitebotError(
                f"{self.path} is not a readable chat state of the bot ({exc}): move it away and start again "
                "(a new one is created; only the chats' choices of articles and follow-ups are lost)"
            ) from None

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _safely(self, job: Callable[[], T], fallback: T) -> T:
        """Return ``job()`` under the lock, or ``fallback`` when the file fails or has failed before (from then on
        it is not touched again until a restart; logged once). A busy file fails only that one call."""
        with self._lock:
            if self.damaged:
                return fallback
            if not self._header_ok():
                self._damage(sqlite3.DatabaseError("file is not a database (its SQLite header is gone)"))
                return fallback
            try:
                return job()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._damage(exc)
                else:
                    log.warning("the chat state %s is busy (%s): skipped it once", self.path, exc)
                return fallback
            except sqlite3.Error as exc:
                self._damage(exc)
                return fallback

    def _header_ok(self) -> bool:
        """Return whether the file still starts as an SQLite database: junk written over it while the bot holds it
        open is not always seen by SQLite, whose pages are cached (one 16-byte read a call)."""
        if self.path == ":memory:":
            return True
        try:
            with open(self.path, "rb") as file:
                return file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
        except OSError:
            return False

    def _damage(self, exc: sqlite3.Error) -> None:
        """Stop using the file for good and say so in the log."""
        self.damaged = True
        log.error(
            "the chat state %s cannot be used (%s): answering without the chats' choices of articles and "
            "without follow-ups; stop the bot, move the file away and start it again to begin afresh",
            self.path,
            exc,
        )

    def scope(self, chat_id: int) -> tuple[int, ...] | None:
        """Return the article ids ``chat_id`` asks, or ``None`` for the whole library (also when unreadable)."""

        def job() -> tuple[int, ...] | None:
            row = self._db.execute("SELECT articles FROM scope WHERE chat_id = ?", (chat_id,)).fetchone()
            return _ids(row[0]) if row else None

        return self._safely(job, None)

    def set_scope(self, chat_id: int, articles: tuple[int, ...] | None) -> bool:
        """Make ``chat_id`` ask ``articles`` (``None``: the whole library); return whether it was saved."""

        def job() -> bool:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if articles is None:
                    self._db.execute("DELETE FROM scope WHERE chat_id = ?", (chat_id,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO scope (chat_id, articles) VALUES (?, ?)",
                        (chat_id, json.dumps(sorted(set(articles)))),
                    )
            return True

        return self._safely(job, False)

    def migrate(self, old: int, new: int) -> bool:
        """Give the supergroup ``new`` the scope of the group ``old`` it was upgraded from (unless it has one of
        its own already); return whether a scope was carried over."""

        def job() -> bool:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                moved = self._db.execute(
                    "INSERT OR IGNORE INTO scope (chat_id, articles) SELECT ?, articles FROM scope WHERE chat_id = ?",
                    (new, old),
                ).rowcount
                self._db.execute("DELETE FROM scope WHERE chat_id = ?", (old,))
            return moved > 0

        return self._safely(job, False)

    def remember(self, chat_id: int, message_id: int, context: AnswerContext) -> None:
        """Remember what answer ``message_id`` was about; forget the chat's answers beyond :data:`KEEP_ANSWERS`
        (skipped when the file cannot be written)."""
        scope = None if context.scope is None else json.dumps(list(context.scope))
        parts = json.dumps(list(context.parts)) if context.parts else None
        row = (chat_id, message_id, context.question, context.article, context.fingerprint, scope, time.time(), parts)

        def job() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT OR REPLACE INTO answers (chat_id, message_id, question, article, fingerprint, scope, at, "
                    "parts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                self._db.execute(
                    "DELETE FROM answers WHERE chat_id = ? AND message_id NOT IN "
                    "(SELECT message_id FROM answers WHERE chat_id = ? ORDER BY message_id DESC LIMIT ?)",
                    (chat_id, chat_id, KEEP_ANSWERS),
                )

        self._safely(job, None)

    def recall(self, chat_id: int, message_id: int) -> AnswerContext | None:
        """Return what answer ``message_id`` of ``chat_id`` was about, or ``None`` when it is not remembered
        (or cannot be read)."""

        def job() -> AnswerContext | None:
            row = self._db.execute(
                "SELECT question, article, fingerprint, scope, parts FROM answers WHERE chat_id = ? AND message_id = ?",
                (chat_id, message_id),
            ).fetchone()
            if row is None:
                return None
            scope = None if row[3] is None else _ids(row[3])
            return AnswerContext(row[0], int(row[1]), row[2], scope, () if row[4] is None else _ids(row[4]))

        return self._safely(job, None)

    def answers(self, chat_id: int) -> int:
        """Return how many answers of ``chat_id`` are remembered (0 when unreadable)."""

        def job() -> int:
            return int(self._db.execute("SELECT COUNT(*) FROM answers WHERE chat_id = ?", (chat_id,)).fetchone()[0])

        return self._safely(job, 0)


def _ids(raw: str) -> tuple[int, ...]:
    """Return the article ids stored as a JSON list (anything else reads as no ids)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(int(v) for v in value if isinstance(v, int)) if isinstance(value, list) else ()
