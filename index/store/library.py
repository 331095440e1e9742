"""Library: many articles in one data directory, added and removed incrementally, searched as a whole or in part.

A library is a directory (``CITEBOT_DATA_DIR``) holding

* ``library.sqlite3``: the catalog (:mod:`index.store.catalog`): articles, their text and words;
* ``vectors/KEY.npy``: each stored article version's sentence vectors (:mod:`index.store.vectors`);
* ``.library.sqlite3.lock``: the writers' lock (filelock, :mod:`index.store.locking`): adding, removing and
  re-embedding serialise on it;
* ``library.changed``: rewritten after every change, so a long-running reader notices a change with one
  ``stat`` per question and loads only what changed (:meth:`LibraryIndex.refresh`).
* ``search/``: the search index readers derived from all this and persisted (``index.search.persisted``); derived
  data this module never reads, writes or deletes.

Adding an article embeds only that article (its sentences, once); a removal embeds nothing. The order of
writes makes a crash at any moment harmless: the vector file is written (atomically) before the catalog
row that names it is committed, and deleted after the row is gone; a file that no row names is garbage
from a crash and the next writer deletes it. A library can also live in memory only (``Library(None)``),
as ``citebot eval`` uses it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.analysis.background import Background, background_ok, background_vectors, measure, questions_fingerprint
from index.analysis.sentences import sentence_windows, split_sentences
from index.analysis.words import tokenize
from index.config import IndexConfig, default_article
from index.errors import DataDirError, IndexCorruptError, LibraryError, Stopped
from index.reading.article import Article
from index.reading.ingest import read_article
from index.store.catalog import ArticleRecord, Catalog, NewArticle, Provenance, StoredText
from index.store.crash import crash_point
from index.store.locking import LOCK_TIMEOUT, hold
from index.store.vectors import MAX_SENTENCES, load_vectors, map_vectors, save_vectors

if TYPE_CHECKING:  # the model (and torch) load only when something is embedded
    from index.analysis.embed import Embedder

log = logging.getLogger(__name__)

CATALOG = "library.sqlite3"
VECTORS = "vectors"
CHANGED = "library.changed"
#: The source name of the bundled article in a new library.
BUNDLED = "bundled:idlib-article.txt"
_DIGIT = re.compile(r"\d")


def check_data_dir(data_dir: Path, create: bool = True) -> Path:
    """Create ``data_dir`` if needed and prove it is a writable directory; return it.

    With ``create`` false nothing is created: the nearest existing directory above a missing ``data_dir`` is
    checked instead (``citebot list`` on a library not made yet).

    Called before the model loads, so an unusable directory costs a second, not a model load.
    Permission is proved by creating and deleting a file, not by ``os.access`` alone: that
    also catches read-only file systems, and gives the right answer for root (who passes
    every permission check on an ordinary read-only directory, and really can write there).

    Raises:
        DataDirError: when it is a file, lies under a file, or cannot be created or written.
    """
    data_dir = Path(data_dir).expanduser()
    where, fix = f"data directory {data_dir}", "set CITEBOT_DATA_DIR to a writable directory"
    try:
        found: os.stat_result | None = os.stat(data_dir)
    except PermissionError:  # a folder above it may not be entered (Path.exists raises this too)
        raise DataDirError(f"{where} cannot be reached (permission denied on a folder above it); {fix}") from None
    except OSError:
        found = None  # missing, or under a file: said below
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise DataDirError(f"{where} is a file, not a directory; {fix}")
    probe_dir = data_dir
    if create:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"{where} cannot be created ({exc.strerror or type(exc).__name__}); {fix}") from None
    else:
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise DataDirError(f"{where} cannot be created (Not a directory); {fix}")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise DataDirError(f"{where} is not writable (permission denied); {fix}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=probe_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"{where} is not writable ({exc.strerror or type(exc).__name__}); {fix}") from None
    return data_dir


# --- the library on disk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Library.add` did with one article.

    Attributes:
        status: ``"added"``, ``"replaced"`` (a new version of the same source) or ``"unchanged"`` (the
            library already has this content).
        record: the article as stored (the existing one when unchanged).
        seconds: how long it took.
    """

    status: str
    record: ArticleRecord
    seconds: float


@dataclass
class Prepared:
    """An article split, tokenised and embedded, ready to be stored (:meth:`Library.prepare`)."""

    article: Article
    sentences: np.ndarray
    terms: list[list[str]]
    vectors: np.ndarray
    background: Background
    provenance: Provenance


class Library:
    """The library in ``data_dir`` (or in memory when ``data_dir`` is ``None``).

    Opening it reads only the catalog: listing and removing never load the model. :meth:`index` loads
    the vectors for searching; :meth:`add` needs an embedder.

    Args:
        data_dir: the directory, created if missing; ``None`` for a library in memory.
        config: chunking and search settings.
        readonly: do not create anything (used by ``citebot list`` before the library exists).

    Raises:
        LibraryError: when the directory cannot be used or its catalog is not a citebot catalog.
    """

    def __init__(self, data_dir: Path | None, config: IndexConfig | None = None, readonly: bool = False) -> None:
        self.config = config or IndexConfig()
        self._ready_for: str | None = None
        self._memory_vectors: dict[int, np.ndarray] = {}
        if data_dir is None:
            self.directory = None
            self.catalog = Catalog(":memory:")
        else:
            self.directory = Path(data_dir) if readonly else check_data_dir(Path(data_dir))
            vectors = self.directory / VECTORS
            if vectors.exists() and not vectors.is_dir():
                raise LibraryError(
                    f"{vectors} is not a directory (citebot keeps the library's vector files there); "
                    "move it away and restore the folder from a backup, or remove it to embed every article again"
                )
            catalog = self.directory / CATALOG
            if _emptied(catalog, vectors):
                raise LibraryError(
                    f"the catalog {catalog} is empty (0 bytes) beside the library's vector files: it was damaged, and "
                    "citebot will not start a new library over it; restore it from a backup, or move the data "
                    "directory away"
                )
            self.catalog = Catalog(catalog, readonly=readonly)
        self.readonly = readonly

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """Return whether ``data_dir`` holds a library (``False`` when it cannot be looked into)."""
        try:
            return (Path(data_dir).expanduser() / CATALOG).is_file()
        except OSError:  # a folder on the way that may not be entered (is_file raises PermissionError)
            return False

    def close(self) -> None:
        """Close the catalog."""
        self.catalog.close()

    # --- files -------------------------------------------------------------------------------------------

    def _vector_path(self, key: int) -> Path:
        assert self.directory is not None
        return self.directory / VECTORS / f"{key}.npy"

    def load_vectors(self, record: ArticleRecord, mapped: bool = False) -> np.ndarray:
        """Return the sentence vectors of ``record``, checked against the catalog (memory-mapped if ``mapped``)."""
        if self.directory is None:
            return self._memory_vectors[record.key]
        return load_vectors(self._vector_path(record.key), record.vectors_sha256, record.sentences, mapped=mapped)

    def map_vectors(
        self, record: ArticleRecord, dimension: int, identity: tuple[int, int, int] | None = None
    ) -> tuple[np.ndarray, tuple[int, int, int] | None]:
        """Return ``record``'s vectors mapped without hashing, and the file's identity (see
        :func:`~index.store.vectors.map_vectors`); in memory, the vectors and ``None``."""
        if self.directory is None:
            return self._memory_vectors[record.key], None
        folder = os.path.join(self.directory, VECTORS)  # strings, not Paths: a reader maps thousands at once
        return map_vectors(os.path.join(folder, f"{record.key}.npy"), record.sentences, dimension, identity)

    def changed_stamp(self) -> tuple[int, int, int] | None:
        """Return the identity of ``library.changed`` as ``stat`` sees it (``None`` in memory or when absent)."""
        if self.directory is None:
            return (self.catalog.generation, 0, 0)
        try:
            st = os.stat(self.directory / CHANGED)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _mark_changed(self) -> None:
        if self.directory is None:
            return
        path = self.directory / CHANGED
        tmp = path.with_name(f".{CHANGED}.{os.getpid()}.tmp")
        tmp.write_text(f"{self.catalog.generation}\n", encoding="ascii")
        os.replace(tmp, path)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writers' lock (in memory: nothing to lock); clean up what a crashed writer left."""
        if self.directory is None:
            yield
            return
        if self.readonly:
            raise LibraryError(f"the library in {self.directory} is opened read-only; it cannot be changed")
        with hold(self.directory / CATALOG, "changing the library", timeout=LOCK_TIMEOUT):
            try:
                self._collect_garbage()
                yield
            finally:
                with contextlib.suppress(OSError):
                    self._mark_changed()

    def _collect_garbage(self) -> None:
        """Delete vector files and temporary files that no catalog row names (left by a crash).

        A vector file with a key this catalog never gave out means the catalog is not the one that wrote the
        files (replaced, or made anew over a lost one): then nothing is deleted and the change is refused.
        """
        assert self.directory is not None
        folder = self.directory / VECTORS
        if not folder.is_dir():
            return
        keys = set(self.catalog.keys())
        last = self.catalog.last_key()
        foreign = sorted(
            p.name for p in folder.iterdir() if p.name.split(".")[0].isdigit() and int(p.name.split(".")[0]) > last
        )
        if foreign:
            raise LibraryError(
                f"{folder} holds vector files the catalog {self.catalog.path} never wrote ({', '.join(foreign[:3])}): "
                "the catalog is not the library's own; nothing was changed or deleted: restore it from a backup"
            )
        for path in folder.iterdir():
            stem = path.name.split(".")[0] if not path.name.startswith(".") else ""
            if path.name.startswith(".") or not stem.isdigit() or int(stem) not in keys:
                with contextlib.suppress(OSError):
                    path.unlink()

    # --- reading ----------------------------------------------------------------------------------------

    def records(self, ids: Iterable[int] | None = None) -> list[ArticleRecord]:
        """Return the articles of the library (all, or those of ``ids``), by id."""
        return self.catalog.records(ids)

    def resolve(self, ids: Iterable[int]) -> list[ArticleRecord]:
        """Return the articles ``ids``, in that order.

        Raises:
            LibraryError: naming the ids the library does not have and the ones it has.
        """
        wanted = list(dict.fromkeys(ids))
        found = {r.id: r for r in self.catalog.records(wanted)}
        missing = [i for i in wanted if i not in found]
        if missing:
            have = ", ".join(str(r.id) for r in self.catalog.records()) or "none"
            raise LibraryError(f"no article with id {', '.join(map(str, missing))} in the library (ids: {have})")
        return [found[i] for i in wanted]

    def ensure_ready(self, embedder: Embedder) -> None:
        """Seed a new library with the bundled article and re-embed one made with another model."""
        if self._ready_for == embedder.fingerprint:
            return  # checked once per process and model: asking costs no catalog read
        model = self.catalog.get_meta("model")
        seeded = self.catalog.get_meta("seeded")
        questions = self.catalog.get_meta("background_questions")
        if model == embedder.fingerprint and seeded and questions == questions_fingerprint():
            self._ready_for = embedder.fingerprint
            return
        with self.writing():
            model = self.catalog.get_meta("model")
            if model is not None and model != embedder.fingerprint and len(self.catalog):
                self._reembed(embedder, model)
            elif self.catalog.get_meta("background_questions") != questions_fingerprint() and len(self.catalog):
                self._remeasure(embedder)
            with self.catalog.transaction():
                self.catalog.set_meta("model", embedder.fingerprint)
                self.catalog.set_meta("background_questions", questions_fingerprint())
            if not self.catalog.get_meta("seeded"):
                if self.config.seed:
                    article = read_article(default_article())
                    article = Article(
                        article.text, article.paragraphs, article.title, article.date, BUNDLED, article.fingerprint
                    )
                    self._store(self.prepare(article, embedder))
                with self.catalog.transaction():
                    self.catalog.set_meta("seeded", "1")
        self._ready_for = embedder.fingerprint

    def _remeasure(self, embedder: Embedder) -> None:
        """Measure every article's background again (the background questions changed; no text is embedded)."""
        for record in self.catalog.records():
            stored = self.catalog.text(record.key)
            try:
                vectors = self.load_vectors(record)
            except IndexCorruptError:
                continue  # repaired (and measured) when it is next loaded
            background = _background(vectors, stored, self.config.window, embedder)
            self.catalog.set_vectors(record.id, record.vectors_sha256, background.mean, background.std, len(vectors))

    def _reembed(self, embedder: Embedder, old: str) -> None:
        records = self.catalog.records()
        log.warning(
            "the library was indexed with model %s; embedding its %d articles again with %s",
            old,
            len(records),
            embedder.fingerprint,
        )
        for record in records:
            stored = self.catalog.text(record.key)
            texts = [stored.text[int(s) : int(e)] for _, s, e in stored.sentences]
            vectors = embedder.encode(texts, batch_size=self.config.batch_size)
            background = _background(vectors, stored, self.config.window, embedder)
            sha = self._write_vectors(record.key, vectors)
            self.catalog.set_vectors(record.id, sha, background.mean, background.std, len(vectors))

    def repair(self, record: ArticleRecord, embedder: Embedder) -> ArticleRecord | None:
        """Mend ``record`` after its vectors or its background were found damaged: embed it again from its stored
        text when the vectors are bad, and measure its background again.

        Returns the record as it now stands, or ``None`` when it was removed meanwhile.
        """
        with self.writing():
            current = self.catalog.record(record.id)
            if current is None or current.key != record.key:
                return current
            stored = self.catalog.text(current.key)
            rows = len(stored.sentences)  # the stored text, not the record's count, says how many vectors it needs
            try:
                if self.directory is None:
                    vectors = self._memory_vectors[current.key]
                else:
                    vectors = load_vectors(self._vector_path(current.key), current.vectors_sha256, rows)
                sha = current.vectors_sha256
            except (IndexCorruptError, KeyError):
                texts = [stored.text[int(a) : int(b)] for _, a, b in stored.sentences]
                vectors = embedder.encode(texts, batch_size=self.config.batch_size)
                sha = self._write_vectors(current.key, vectors)
            if (
                sha == current.vectors_sha256
                and current.sentences == rows
                and background_ok(current.background_mean, current.background_std)
            ):
                return current  # another process repaired it first
            background = _background(vectors, stored, self.config.window, embedder)
            self.catalog.set_vectors(current.id, sha, background.mean, background.std, rows)
            return self.catalog.record(current.id)

    # --- writing ----------------------------------------------------------------------------------------

    def prepare(
        self,
        article: Article,
        embedder: Embedder,
        provenance: Provenance | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Prepared:
        """Split, tokenise and embed ``article`` (the slow part of adding; no lock is held).

        Raises:
            Stopped: when ``should_stop()`` says so, while splitting sentences or between embedding batches.
        """
        sentences = split_sentences(article, should_stop)
        if len(sentences) >= MAX_SENTENCES:
            raise LibraryError(f"{article.source}: too many sentences ({len(sentences)}; at most {MAX_SENTENCES - 1})")
        texts = [article.text[s.start : s.end] for s in sentences]
        terms = [tokenize(t) for t in texts]
        vectors = embedder.encode(texts, batch_size=self.config.batch_size, should_stop=should_stop)
        rows = np.array([[s.paragraph, s.start, s.end] for s in sentences], dtype=np.int64).reshape(-1, 3)
        stored = StoredText(
            article.text, article.paragraphs, rows, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)
        )
        background = _background(vectors, stored, self.config.window, embedder)
        return Prepared(article, rows, terms, vectors, background, provenance or Provenance())

    def _write_vectors(self, key: int, vectors: np.ndarray) -> str:
        if self.directory is None:
            self._memory_vectors[key] = np.ascontiguousarray(vectors, dtype=np.float32)
            return "memory"
        path = self._vector_path(key)
        try:
            return save_vectors(path, vectors)
        except OSError as exc:
            reason = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror or type(exc).__name__
            raise LibraryError(
                f"cannot write {path} ({reason}); the library is unchanged (nothing of this change was stored): "
                "fix that and run the command again"
            ) from None

    def _store(self, prepared: Prepared, replace: ArticleRecord | None = None) -> ArticleRecord:
        key = self.catalog.next_key()
        sha = self._write_vectors(key, prepared.vectors)
        crash_point("vectors-written")
        a, p = prepared.article, prepared.provenance
        record = self.catalog.insert(
            key,
            NewArticle(
                source=a.source,
                fingerprint=a.fingerprint,
                title=a.title,
                date=a.date,
                kind=p.kind,
                text=a.text,
                paragraphs=a.paragraphs,
                sentences=prepared.sentences,
                terms=prepared.terms,
                vectors_sha256=sha,
                background_mean=prepared.background.mean,
                background_std=prepared.background.std,
                url=a.url,
                site=a.site,
                author=a.author,
                fetched_at=p.fetched_at or a.fetched_at,
                etag=p.etag,
                last_modified=p.last_modified,
                feed=p.feed,
                pages=a.pages,
            ),
            replace=replace,
        )
        crash_point("committed")
        if replace is not None:
            self._forget_vectors(replace.key)
        return record

    def _forget_vectors(self, key: int) -> None:
        if self.directory is None:
            self._memory_vectors.pop(key, None)
        else:
            with contextlib.suppress(OSError):
                self._vector_path(key).unlink()
            crash_point("vector-deleted")

    def add(
        self,
        article: Article,
        embedder: Embedder,
        provenance: Provenance | None = None,
        on_prepared: Callable[[], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> AddResult:
        """Add ``article``: a no-op when the library has its content, a replacement when its source has another.

        Only this article is embedded; nothing stored is recomputed. ``provenance`` is where it came from
        (a plain text file when not given).

        Raises:
            Stopped: when ``should_stop()`` says so, between embedding batches or just before the article is
                stored (then nothing of it was stored).
        """
        started = time.perf_counter()
        self.ensure_ready(embedder)
        existing = self.catalog.by_fingerprint(article.fingerprint)
        if existing is not None:
            return AddResult("unchanged", existing, time.perf_counter() - started)
        prepared = self.prepare(article, embedder, provenance, should_stop)
        if on_prepared is not None:
            on_prepared()
        with self.writing():
            existing = self.catalog.by_fingerprint(article.fingerprint)
            if existing is not None:
                return AddResult("unchanged", existing, time.perf_counter() - started)
            if should_stop is not None and should_stop():  # the last safe point: nothing is written yet
                raise Stopped(f"{article.source}: stopped before it was stored")
            previous = self.catalog.by_source(article.source)
            record = self._store(prepared, replace=previous)
        return AddResult("replaced" if previous else "added", record, time.perf_counter() - started)

    def remove(self, ids: Iterable[int]) -> list[ArticleRecord]:
        """Remove the articles ``ids`` (nothing is embedded); return what was removed.

        Raises:
            LibraryError: when an id is not in the library (then nothing is removed).
        """
        with self.writing():
            records = self.resolve(ids)
            gone = self.catalog.delete(r.id for r in records)
            crash_point("committed")
            for record in gone:
                self._forget_vectors(record.key)
        return gone


def _emptied(catalog: Path, vectors: Path) -> bool:
    """Return whether ``catalog`` is an empty file beside vector files: a damaged catalog, not a new one.

    A catalog being created by another first run is empty for a moment too, but no vector file exists before its
    schema is written.
    """
    try:
        if catalog.stat().st_size != 0:
            return False
        return vectors.is_dir() and any(p.suffix == ".npy" for p in vectors.iterdir())
    except OSError:
        return False


def _background(vectors: np.ndarray, stored: StoredText, window: int, embedder: Embedder) -> Background:
    """Return how close the background questions come to an article's sentences and windows."""
    paragraph_of = stored.sentences[:, 0] if len(stored.sentences) else np.zeros(0, dtype=np.int64)
    spans = sentence_windows(paragraph_of, window)
    if len(vectors):
        cumulative = np.vstack([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, axis=0, dtype=np.float64)])
        sums = np.array([cumulative[b] - cumulative[a] for a, b in spans])
        chunks = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        units = np.vstack([chunks, vectors]).astype(np.float32)
    else:
        units = vectors
    return measure(units, background_vectors(embedder))
