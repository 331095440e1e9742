"""Catalog: the library's articles, their text and their words, in one SQLite database.

The catalog is the library's source of truth. Each article has a public
``id`` (short, typable, never reused: SQLite's AUTOINCREMENT) and an internal
``key`` naming the stored version of its text and vectors; replacing an article
with a changed version keeps its ``id`` and gets a new ``key``. The text, the
sentence spans and the stemmed words (as ids into the ``terms`` table) live in
``texts``; the vectors live in files named after the key (:mod:`index.store.vectors`),
written before the catalog row that points at them is committed, so a crash
leaves at worst a file no row names, which the next writer deletes.

Writers serialise on a file lock (:mod:`index.store.library`); every change bumps
``meta.generation`` in the same transaction, and readers compare it to notice
changes. Nothing here imports the model or faiss.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from index.errors import LibraryError
from index.reading.article import article_label
from index.store.counts import ArticleCounts
from index.store.crash import crash_point

#: The meta row holding the library's totals beside ``term_counts`` (:mod:`index.store.counts`); a catalog without it
#: was written before citebot kept them, and is counted when next opened for writing.
COUNTS = "counts"
#: Bumped when the schema or the meaning of a stored column changes.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS texts (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    paragraphs TEXT NOT NULL,
    sentences BLOB NOT NULL,
    tokens BLOB NOT NULL,
    token_offsets BLOB NOT NULL,
    pages TEXT
);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key INTEGER NOT NULL UNIQUE REFERENCES texts(key),
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    date TEXT,
    url TEXT,
    site TEXT,
    author TEXT,
    kind TEXT NOT NULL DEFAULT 'text',
    paragraphs INTEGER NOT NULL,
    sentences INTEGER NOT NULL,
    words INTEGER NOT NULL,
    chars INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    fetched_at TEXT,
    etag TEXT,
    last_modified TEXT,
    feed TEXT,
    vectors_sha256 TEXT NOT NULL,
    background_mean REAL NOT NULL,
    background_std REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    etag TEXT,
    last_modified TEXT,
    checked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS term_counts (
    term INTEGER PRIMARY KEY REFERENCES terms(id),
    paragraphs INTEGER NOT NULL,
    sentences INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_fingerprint ON articles(fingerprint);
"""


def readonly_uri(path: Path, immutable: bool = False) -> str:
    """Return the SQLite URI that opens ``path`` read-only (``immutable``: no locks, no ``-wal``/``-shm`` created)."""
    return f"file:{quote(str(path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")


def now() -> str:
    """Return the current UTC time as ISO 8601 to the second, the catalog's format for times."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ArticleRecord:
    """One article of the library as the catalog lists it (no text: see :meth:`Catalog.text`).

    Attributes:
        id: the public id (``citebot remove 3``), never reused for another article.
        key: the stored version: names its text row and its vector file.
        source: where it came from: an absolute path, a URL, or ``bundled:NAME``.
        fingerprint: hash of the cleaned text and title (equal content, equal fingerprint).
        title: its headline, or ``""``.
        date: the date found in or about it, if any.
        url: the web address it was fetched from, if any.
        site: the site's name, if known.
        author: its author, if known.
        kind: ``"text"``, ``"markdown"``, ``"html"`` or ``"pdf"``.
        paragraphs: how many paragraphs it has.
        sentences: how many sentences.
        words: how many words.
        chars: how many characters of cleaned text.
        added_at: when this version was added (UTC, ISO 8601).
        fetched_at: when it was fetched, for web sources.
        etag: the HTTP ETag of the fetched version, for ``refresh``.
        last_modified: the HTTP Last-Modified of the fetched version.
        feed: the feed it came from, if any.
        vectors_sha256: the SHA-256 of its vector file.
        background_mean: mean best cosine of unrelated questions with it (:mod:`index.analysis.background`).
        background_std: their spread.
    """

    id: int
    key: int
    source: str
    fingerprint: str
    title: str
    date: str | None
    url: str | None
    site: str | None
    author: str | None
    kind: str
    paragraphs: int
    sentences: int
    words: int
    chars: int
    added_at: str
    fetched_at: str | None
    etag: str | None
    last_modified: str | None
    feed: str | None
    vectors_sha256: str
    background_mean: float
    background_std: float

    @property
    def label(self) -> str:
        """A short human name: the title, else the last part of the source."""
        return article_label(self.title, self.source, self.id)

    def to_dict(self) -> dict[str, Any]:
        """Return the record for ``citebot list --json`` (no internal columns)."""
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "site": self.site,
            "author": self.author,
            "date": self.date,
            "kind": self.kind,
            "paragraphs": self.paragraphs,
            "sentences": self.sentences,
            "words": self.words,
            "added_at": self.added_at,
            "fetched_at": self.fetched_at,
            "feed": self.feed,
        }


_RECORD_COLUMNS = tuple(ArticleRecord.__dataclass_fields__)


@dataclass(frozen=True)
class StoredText:
    """The searchable content of one stored article version.

    Attributes:
        text: the cleaned text; every quote is a substring of it.
        paragraphs: ``(start, end)`` of each paragraph in ``text``.
        sentences: ``(n, 3)`` int64 rows ``(paragraph, start, end)``, in order.
        tokens: the stemmed content words of all sentences, as term ids, concatenated.
        token_offsets: ``(sentences + 1,)`` offsets into ``tokens`` (sentence ``i`` is
            ``tokens[token_offsets[i]:token_offsets[i + 1]]``).
        pages: the page of each paragraph (PDFs), else ``None``.
    """

    text: str
    paragraphs: tuple[tuple[int, int], ...]
    sentences: np.ndarray
    tokens: np.ndarray
    token_offsets: np.ndarray
    pages: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Provenance:
    """Where an article version came from, as the catalog keeps it beside the text (all but ``kind`` unset for a file).

    Attributes:
        kind: ``"text"``, ``"markdown"``, ``"html"`` or ``"pdf"``.
        fetched_at: when it was fetched (ISO 8601, UTC), for a web page.
        etag: the server's ETag, for the next conditional request.
        last_modified: the server's Last-Modified, likewise.
        feed: the URL of the feed the article came from, when it came from one.
    """

    kind: str = "text"
    fetched_at: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    feed: str | None = None


@dataclass
class NewArticle:
    """What :meth:`Catalog.insert` stores: the record's columns and the text (see :class:`StoredText`)."""

    source: str
    fingerprint: str
    title: str
    date: str | None
    kind: str
    text: str
    paragraphs: Sequence[tuple[int, int]]
    sentences: np.ndarray
    terms: list[list[str]]
    vectors_sha256: str
    background_mean: float
    background_std: float
    url: str | None = None
    site: str | None = None
    author: str | None = None
    fetched_at: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    feed: str | None = None
    pages: Sequence[int] | None = None


class Catalog:
    """The SQLite catalog of one library.

    Args:
        path: the database file, or ``":memory:"`` for a library that lives in memory only.
        readonly: open without creating anything (``citebot list`` on a missing library).
        immutable: with ``readonly``, take the file as unchanging, so SQLite creates no ``-wal``/``-shm`` files beside
            it (``citebot doctor``; only safe while no other process has the library open).

    Raises:
        LibraryError: when the file is not a citebot catalog or is damaged.
    """

    def __init__(self, path: Path | str, readonly: bool = False, immutable: bool = False) -> None:
        self.path = str(path)
        try:
            if readonly:
                self._db = self._open_readonly(immutable)
            else:
                self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            if self.path != ":memory:" and not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self._db.executescript(_SCHEMA)
                self._init_meta()
            self._check_version()
            if not readonly:
                self._ensure_counts()
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise sqlite_problem(self.path, exc) from None
            raise LibraryError(f"{self.path}: not a usable citebot library ({exc})") from None

    def _open_readonly(self, immutable: bool) -> sqlite3.Connection:
        """Open the file read-only (``immutable``: see the class); on a read-only file system (where SQLite cannot
        make the WAL's shared-memory file) open it as immutable: nobody can change it there."""
        path = Path(self.path)
        uri = readonly_uri(path, immutable)
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            db.close()
            if immutable or os.access(path.parent, os.W_OK):
                raise
            db = sqlite3.connect(readonly_uri(path, True), uri=True, isolation_level=None, check_same_thread=False)
        return db

    # --- housekeeping --------------------------------------------------------------------------------

    def _init_meta(self) -> None:
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = row[0] if row else "none"
            raise LibraryError(f"{self.path}: library format {found}, this citebot reads format {SCHEMA_VERSION}")

    def _ensure_counts(self) -> None:
        """Count the library's terms when this catalog was written before it kept :mod:`index.store.counts`."""
        if self.get_meta(COUNTS) is not None:
            return
        with self.transaction() as db:
            if self.get_meta(COUNTS) is not None:
                return  # another process counted them meanwhile
            db.execute("DELETE FROM term_counts")
            self.set_meta(COUNTS, json.dumps([0, 0, 0.0, 0.0]))
            for (key,) in db.execute("SELECT key FROM texts").fetchall():
                self._count(db, key, +1)  # a text that cannot be read is not counted (doctor reports it)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def damage(self) -> LibraryError | None:
        """Return the error to report when SQLite's quick check finds the catalog damaged, else ``None``.

        Reads every page once (``PRAGMA quick_check``): cheap beside loading the model, and it catches a damaged
        page that the rows being listed do not touch.
        """
        try:
            rows = [r[0] for r in self._db.execute("PRAGMA quick_check(3)").fetchall()]
        except sqlite3.DatabaseError as exc:
            return sqlite_problem(self.path, exc)
        if rows == ["ok"]:
            return None
        return sqlite_problem(self.path, sqlite3.DatabaseError("; ".join(rows)))

    def check(self) -> None:
        """Raise the one-line :class:`LibraryError` of :meth:`damage` when the catalog is damaged."""
        if (problem := self.damage()) is not None:
            raise problem

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error).

        Raises:
            LibraryError: one line, when SQLite fails (a full disk, a read-only file, a damaged catalog).
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise sqlite_problem(self.path, exc) from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise sqlite_problem(self.path, exc) from None
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Run the block's reads in one read transaction: they see one state of the catalog."""
        try:
            self._db.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise sqlite_problem(self.path, exc) from None
        try:
            yield self._db
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("COMMIT")

    def get_meta(self, name: str, default: str | None = None) -> str | None:
        """Return the value of setting ``name`` of the library, or ``default``."""
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def set_meta(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` (call inside :meth:`transaction`)."""
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value)
        )

    @property
    def generation(self) -> int:
        """A number that grows with every change of the library's articles."""
        return int(self.get_meta("generation", "0") or 0)

    def bump(self) -> None:
        """Count one more change (call inside :meth:`transaction`): readers compare the generation."""
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'generation'")

    # --- reading -------------------------------------------------------------------------------------

    def records(self, ids: Iterable[int] | None = None) -> list[ArticleRecord]:
        """Return the articles (all, or those of ``ids`` that exist), by id."""
        columns = ", ".join(_RECORD_COLUMNS)
        if ids is None:
            rows = self._db.execute(f"SELECT {columns} FROM articles ORDER BY id").fetchall()
        else:
            wanted = sorted(set(ids))
            marks = ", ".join("?" * len(wanted))
            rows = self._db.execute(
                f"SELECT {columns} FROM articles WHERE id IN ({marks}) ORDER BY id", wanted
            ).fetchall()
        return [ArticleRecord(*row) for row in rows]

    def record(self, article_id: int) -> ArticleRecord | None:
        """Return the article ``article_id``, or ``None``."""
        found = self.records([article_id])
        return found[0] if found else None

    def by_fingerprint(self, fingerprint: str) -> ArticleRecord | None:
        """Return the article whose content has ``fingerprint``, if the library has it."""
        row = self._db.execute(
            "SELECT id FROM articles WHERE fingerprint = ? ORDER BY id LIMIT 1", (fingerprint,)
        ).fetchone()
        return self.record(row[0]) if row else None

    def by_source(self, source: str) -> ArticleRecord | None:
        """Return the article added from ``source`` (a path or URL), if any."""
        row = self._db.execute("SELECT id FROM articles WHERE source = ? ORDER BY id LIMIT 1", (source,)).fetchone()
        return self.record(row[0]) if row else None

    def keys(self) -> dict[int, int]:
        """Return ``{key: id}`` of every article: what a reader compares with what it has loaded."""
        return {int(k): int(i) for k, i in self._db.execute("SELECT key, id FROM articles")}

    def text(self, key: int) -> StoredText:
        """Return the stored text of version ``key``.

        Raises:
            LibraryError: when the row is missing or damaged.
        """
        row = self._db.execute(
            "SELECT text, paragraphs, sentences, tokens, token_offsets, pages FROM texts WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise LibraryError(f"the text of stored version {key} is missing from the catalog")
        try:
            paragraphs = tuple((int(a), int(b)) for a, b in json.loads(row["paragraphs"]))
            sentences = np.frombuffer(row["sentences"], dtype=np.int64).reshape(-1, 3)
            tokens = np.frombuffer(row["tokens"], dtype=np.int32)
            offsets = np.frombuffer(row["token_offsets"], dtype=np.int64)
            pages = tuple(int(p) for p in json.loads(row["pages"])) if row["pages"] else None
        except (ValueError, TypeError) as exc:
            raise LibraryError(f"the text of stored version {key} is damaged ({exc})") from None
        if len(offsets) != len(sentences) + 1 or (len(offsets) and offsets[-1] != len(tokens)):
            raise LibraryError(f"the words of stored version {key} do not match its sentences")
        return StoredText(row["text"], paragraphs, sentences, tokens, offsets, pages)

    def vocabulary(self, since: int = 0) -> list[tuple[int, str]]:
        """Return ``(id, term)`` of every term with an id above ``since``, by id."""
        return [
            (int(i), t) for i, t in self._db.execute("SELECT id, term FROM terms WHERE id > ? ORDER BY id", (since,))
        ]

    def _rows_in(self, sql: str, values: Sequence[object]) -> Iterator[sqlite3.Row]:
        """Yield the rows of ``sql`` (whose ``{marks}`` is an ``IN`` list) for ``values``, 500 at a time (SQLite's
        limit on parameters)."""
        for start in range(0, len(values), 500):
            batch = values[start : start + 500]
            yield from self._db.execute(sql.format(marks=", ".join("?" * len(batch))), batch)

    def term_ids(self, terms: Iterable[str]) -> dict[str, int]:
        """Return the ids of those of ``terms`` the library knows."""
        rows = self._rows_in("SELECT id, term FROM terms WHERE term IN ({marks})", list(set(terms)))
        return {t: int(i) for i, t in rows}

    def terms_of(self, ids: Iterable[int]) -> dict[int, str]:
        """Return the terms of those term ``ids`` the library knows."""
        rows = self._rows_in("SELECT id, term FROM terms WHERE id IN ({marks})", sorted({int(i) for i in ids}))
        return {int(i): t for i, t in rows}

    def term_counts(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, float, float]]:
        """Return, for each term id of ``ids`` (0 for one unknown), how many of the library's paragraphs and sentences
        hold it, and the library's totals (paragraphs, sentences, their summed lengths in terms), read together.

        Raises:
            LibraryError: when the catalog was opened read-only before it kept these counts.
        """
        known = sorted({int(i) for i in ids if i >= 0})
        with self.snapshot():
            raw = self.get_meta(COUNTS)
            if raw is None:
                raise LibraryError(
                    f"{self.path} does not keep term counts yet; open it once with a citebot that may write it"
                )
            rows = self._rows_in("SELECT term, paragraphs, sentences FROM term_counts WHERE term IN ({marks})", known)
            found = {int(t): (int(p), int(s)) for t, p, s in rows}
        p, s, p_len, s_len = json.loads(raw)
        paragraphs = np.array([found.get(int(i), (0, 0))[0] for i in ids], dtype=np.float64)
        sentences = np.array([found.get(int(i), (0, 0))[1] for i in ids], dtype=np.float64)
        return paragraphs, sentences, (int(p), int(s), float(p_len), float(s_len))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    # --- writing (callers hold the library's lock) ---------------------------------------------------

    def last_key(self) -> int:
        """Return the highest key this catalog ever gave out (a vector file with a higher key is not its own)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'texts'").fetchone()
        last = int(row[0]) if row else 0
        return max(last, int(self.get_meta("reserved_key", "0") or 0))

    def next_key(self) -> int:
        """Return a key no stored version has ever had (for naming a vector file before the row exists)."""
        key = self.last_key() + 1
        with self.transaction():
            self.set_meta("reserved_key", str(key))
        return key

    def _intern(self, terms: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Return the term ids (new terms are added) of each sentence's terms, flat, and the offsets."""
        distinct = {t for sentence in terms for t in sentence}
        known = self.term_ids(distinct)
        new = sorted(distinct - known.keys())
        if new:
            self._db.executemany("INSERT INTO terms(term) VALUES (?)", [(t,) for t in new])
            known.update(self.term_ids(new))
        flat = np.array([known[t] for sentence in terms for t in sentence], dtype=np.int32)
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(sentence) for sentence in terms])
        return flat, offsets

    def _count(self, db: sqlite3.Connection, key: int, sign: int) -> bool:
        """Add (``sign`` +1) or take away (-1) the term counts of stored version ``key`` (inside a transaction);
        return ``False`` when its text is missing or cannot be read (nothing is counted then)."""
        if self.get_meta(COUNTS) is None:
            return True  # forgotten (see _uncount): counted afresh at the next open for writing
        row = db.execute(
            "SELECT paragraphs, sentences, tokens, token_offsets FROM texts WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return False
        try:
            counts = ArticleCounts.of(
                np.frombuffer(row["tokens"], dtype=np.int32),
                np.frombuffer(row["token_offsets"], dtype=np.int64),
                np.frombuffer(row["sentences"], dtype=np.int64).reshape(-1, 3),
                len(json.loads(row["paragraphs"])),
            )
        except (ValueError, TypeError, IndexError, AssertionError):
            return False
        self._add_counts(db, counts, sign)
        return True

    def _add_counts(self, db: sqlite3.Connection, counts: ArticleCounts, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) one article's ``counts`` (inside a transaction, the counts kept)."""
        if self.get_meta(COUNTS) is None:
            return  # forgotten (see _uncount): counted afresh at the next open for writing
        db.executemany(
            "INSERT INTO term_counts(term, paragraphs, sentences) VALUES (?, ?, ?) ON CONFLICT(term) DO UPDATE SET "
            "paragraphs = paragraphs + excluded.paragraphs, sentences = sentences + excluded.sentences",
            zip(
                counts.terms.tolist(),
                (sign * counts.paragraphs).tolist(),
                (sign * counts.sentences).tolist(),
                strict=True,
            ),
        )
        if sign < 0:
            db.execute("DELETE FROM term_counts WHERE paragraphs <= 0")
        totals = json.loads(self.get_meta(COUNTS) or "[0, 0, 0.0, 0.0]")
        self.set_meta(COUNTS, json.dumps([a + sign * b for a, b in zip(totals, counts.totals, strict=True)]))

    def _uncount(self, db: sqlite3.Connection, key: int) -> None:
        """Take away version ``key``'s term counts; when its text cannot be read, forget the library's counts, which
        the next process to open the catalog for writing makes again (the text is gone by then)."""
        if not self._count(db, key, -1):
            db.execute("DELETE FROM meta WHERE name = ?", (COUNTS,))

    def insert(self, key: int, article: NewArticle, replace: ArticleRecord | None = None) -> ArticleRecord:
        """Store ``article`` as version ``key``: a new article, or a new version of ``replace`` (same id).

        Returns:
            The stored record.
        """
        words = len(article.text.split())
        with self.transaction() as db:
            tokens, offsets = self._intern(article.terms)
            sentences = np.ascontiguousarray(article.sentences, dtype=np.int64).reshape(-1, 3)
            db.execute(
                "INSERT INTO texts(key, text, paragraphs, sentences, tokens, token_offsets, pages) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    article.text,
                    json.dumps([list(p) for p in article.paragraphs]),
                    sentences.tobytes(),
                    tokens.tobytes(),
                    offsets.tobytes(),
                    json.dumps(list(article.pages)) if article.pages is not None else None,
                ),
            )
            self._add_counts(db, ArticleCounts.of(tokens, offsets, sentences, len(article.paragraphs)), +1)
            values = {
                "key": key,
                "source": article.source,
                "fingerprint": article.fingerprint,
                "title": article.title,
                "date": article.date,
                "url": article.url,
                "site": article.site,
                "author": article.author,
                "kind": article.kind,
                "paragraphs": len(article.paragraphs),
                "sentences": len(article.sentences),
                "words": words,
                "chars": len(article.text),
                "added_at": now(),
                "fetched_at": article.fetched_at,
                "etag": article.etag,
                "last_modified": article.last_modified,
                "feed": article.feed,
                "vectors_sha256": article.vectors_sha256,
                "background_mean": article.background_mean,
                "background_std": article.background_std,
            }
            if replace is None:
                names = ", ".join(values)
                marks = ", ".join("?" * len(values))
                cursor = db.execute(f"INSERT INTO articles({names}) VALUES ({marks})", tuple(values.values()))
                article_id = int(cursor.lastrowid or 0)
            else:
                sets = ", ".join(f"{name} = ?" for name in values)
                db.execute(f"UPDATE articles SET {sets} WHERE id = ?", (*values.values(), replace.id))
                self._uncount(db, replace.key)
                db.execute("DELETE FROM texts WHERE key = ?", (replace.key,))
                article_id = replace.id
            self.bump()
            crash_point("catalog-open")
        record = self.record(article_id)
        assert record is not None
        return record

    def touch(self, article_id: int, **columns: str | None) -> None:
        """Update fetch bookkeeping (``fetched_at``, ``etag``, ``last_modified``) without a new version."""
        allowed = {"fetched_at", "etag", "last_modified"}
        if not columns or not set(columns) <= allowed:
            raise ValueError(f"touch updates only {', '.join(sorted(allowed))}, got {', '.join(columns)}")
        sets = ", ".join(f"{name} = ?" for name in columns)
        with self.transaction() as db:
            db.execute(f"UPDATE articles SET {sets} WHERE id = ?", (*columns.values(), article_id))

    def delete(self, ids: Iterable[int]) -> list[ArticleRecord]:
        """Remove the articles ``ids`` and their texts; return the records removed."""
        gone = self.records(ids)
        if not gone:
            return []
        with self.transaction() as db:
            for record in gone:
                db.execute("DELETE FROM articles WHERE id = ?", (record.id,))
                self._uncount(db, record.key)
                db.execute("DELETE FROM texts WHERE key = ?", (record.key,))
            self.bump()
            crash_point("catalog-open")
        return gone

    def save_feed(self, url: str, title: str, etag: str | None, last_modified: str | None, checked_at: str) -> None:
        """Remember the feed at ``url`` (for ``citebot refresh``) with what its last read returned."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO feeds(url, title, etag, last_modified, checked_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(url) DO UPDATE SET title = excluded.title, etag = excluded.etag, "
                "last_modified = excluded.last_modified, checked_at = excluded.checked_at",
                (url, title, etag, last_modified, checked_at),
            )

    def feeds(self) -> list[tuple[str, str | None, str | None]]:
        """Return ``(url, etag, last_modified)`` of every feed the library follows."""
        rows = self._db.execute("SELECT url, etag, last_modified FROM feeds ORDER BY url").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def set_vectors(
        self, article_id: int, sha256: str, background_mean: float, background_std: float, sentences: int
    ) -> None:
        """Record an article's re-written vector file (its checksum, its rows) and its background, measured again."""
        with self.transaction() as db:
            db.execute(
                "UPDATE articles SET vectors_sha256 = ?, background_mean = ?, background_std = ?, sentences = ? "
                "WHERE id = ?",
                (sha256, background_mean, background_std, sentences, article_id),
            )
            self.bump()


#: What SQLite says when pages of the file are not what it wrote.
_DAMAGE = ("malformed", "not a database", "corrupt", "quick_check", "*** in database", "on tree page", "wrong # of")


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc)
    return not isinstance(exc, sqlite3.OperationalError) or any(word in text for word in _DAMAGE)


def sqlite_problem(path: str, exc: sqlite3.DatabaseError) -> LibraryError:
    """Return the one-line error for SQLite's ``exc`` on the catalog ``path``: what happened and what to do."""
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if "full" in text:
        return LibraryError(
            f"no space left on the device for the catalog {path}; the library is unchanged (the last change was "
            "rolled back): free some space and run the command again"
        )
    if "readonly" in text or "read-only" in text:
        return LibraryError(f"the catalog {path} is read-only; it cannot be changed (make it writable to change it)")
    if _is_damage(exc):
        return LibraryError(
            f"the catalog {path} is damaged ({text}); citebot changed nothing: copy the data directory somewhere "
            "safe, then restore the catalog from a backup or try: sqlite3 library.sqlite3 .recover"
        )
    return LibraryError(f"cannot use the catalog {path} ({text})")


def _guarded(method: Any) -> Any:
    """Return ``method`` with SQLite's errors turned into one-line :class:`LibraryError` naming the catalog."""

    @functools.wraps(method)
    def run(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise sqlite_problem(self.path, exc) from None

    return run


for _name, _member in list(vars(Catalog).items()):
    if (_name.startswith("_") and _name != "__len__") or _name in ("transaction", "damage", "close"):
        continue
    if isinstance(_member, property):
        setattr(Catalog, _name, property(_guarded(_member.fget)))
    elif callable(_member):
        setattr(Catalog, _name, _guarded(_member))
