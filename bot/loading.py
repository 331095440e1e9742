"""How every front end opens what it answers from: the library, or one article file outside it.

The library is ``CITEBOT_DATA_DIR``; ``--article PATH`` (or ``CITEBOT_ARTICLE``) answers from one file
instead, through a library of that one article cached under ``CITEBOT_DATA_DIR/articles/``, so a
second run reuses its vectors. Nothing here loads the model before the input has been checked.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bot.settings import Settings
from index.config import IndexConfig
from index.errors import DataDirError
from index.reading.article import Article
from index.reading.ingest import read_article
from index.search.engine import EngineError
from index.store.library import Library, check_data_dir

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from index.analysis.embed import Embedder
    from index.search.retrieve import Searcher

#: One-article libraries kept for ``--article`` (the least recently used beyond this are deleted).
KEEP_ARTICLE_CACHES = 16


def open_library(settings: Settings, reading: bool = False) -> Library:
    """Return the library of ``CITEBOT_DATA_DIR`` (created if missing; the model is not loaded), its catalog checked.

    ``reading``: the caller only asks questions, so an existing library in a directory that cannot be written
    (a read-only mount, another user's files) is opened read-only instead of refused.

    Raises:
        LibraryError: when the catalog is damaged (one line: what to do), before anything is written.
    """
    try:
        data_dir = check_data_dir(settings.index.data_dir)
    except DataDirError:
        if not (reading and Library.exists(settings.index.data_dir)):
            raise
        library = Library(Path(settings.index.data_dir).expanduser(), settings.index, readonly=True)
    else:
        library = Library(data_dir, settings.index)
    library.catalog.check()
    return library


def article_library(settings: Settings, article: Article) -> Library:
    """Return the cached library that holds only ``article`` (a file given with ``--article``)."""
    data_dir = check_data_dir(settings.index.data_dir)
    cache = data_dir / "articles"
    digest = hashlib.sha256(article.source.encode()).hexdigest()[:16]
    directory = cache / digest
    # One article is searched locally whatever CITEBOT_SEARCH says: its own small library, often scored whole.
    config = IndexConfig(**{**settings.index.__dict__, "data_dir": directory, "seed": False, "search": "local"})
    library = Library(directory, config)
    _prune(cache, keep=directory)
    return library


def _prune(cache: Path, keep: Path) -> None:
    """Delete the least recently used one-article libraries beyond :data:`KEEP_ARTICLE_CACHES`."""
    keep.touch(exist_ok=True)
    entries = sorted((p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP_ARTICLE_CACHES:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


#: Threads for the model when ``CITEBOT_THREADS`` is not set: one for front ends that answer one question at a time
#: (on a busy machine torch's default made one question 3x slower, forcing two 30x: ``benchmarks/threads.py``), the
#: runtime's default for adding articles (every core for onnxruntime, torch's own for torch: a batch of sentences is
#: about twice as fast with both cores on an idle machine).
QUESTION_THREADS = 1


def load_embedder(settings: Settings, batch: bool = False) -> Embedder:
    """Load the embedding model of ``settings`` (under 1 s on onnxruntime, 3-6 s on torch); ``batch`` for adding."""
    from index.analysis.embed import Embedder

    threads = settings.index.threads or (None if batch else QUESTION_THREADS)
    return Embedder(settings.index.model, threads=threads, runtime=settings.index.runtime)


class LazyEmbedder:
    """The embedding model of ``settings``, loaded the first time it is used (a cron ``refresh`` with nothing new,
    an ``add`` of an article the library has, never load it)."""

    def __init__(self, settings: Settings, batch: bool = False) -> None:
        self._settings = settings
        self._batch = batch
        self._embedder: Embedder | None = None

    def loaded(self) -> Embedder:
        """Return the model, loading it now if it is not loaded yet."""
        if self._embedder is None:
            self._embedder = load_embedder(self._settings, batch=self._batch)
        return self._embedder

    def proxy(self) -> Embedder:
        """Return this object where an :class:`Embedder` is expected: any use of it loads the model."""
        return cast("Embedder", self)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded(), name)


def open_searcher(
    settings: Settings,
    article_path: Path | None,
    embedder: Embedder | None = None,
    engine_may_be_down: bool = False,
) -> Searcher:
    """Return a searcher over the library, or over the one article at ``article_path`` (checked first).

    With ``engine_may_be_down`` (a long-running front end), a search engine that cannot be reached yet is one
    warning, not an error: each question tries it again, so the front end recovers by itself when it returns.

    Raises:
        CitebotError: for an unreadable article or an unusable data directory, before the model loads.
    """
    from index.search.retrieve import Searcher

    path = article_path or settings.article
    if path is not None:
        article = read_article(path)
        library = article_library(settings, article)
        embedder = embedder or load_embedder(settings)
        library.add(article, embedder)
    else:
        library = open_library(settings, reading=True)
        embedder = embedder or load_embedder(settings)
    searcher = Searcher(library, embedder)
    try:
        searcher.index  # noqa: B018 - load (and seed) the library now, not at the first question
    except EngineError as exc:
        if not engine_may_be_down:
            raise
        log.warning("%s; each question tries again", exc)
    return searcher


def trim_heap() -> bool:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim``); return whether it could.

    Loading the models and the library frees tens of megabytes of parse buffers that the allocator keeps for reuse;
    a long-running front end (the Telegram bot) calls this once after start-up. Elsewhere than glibc, nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): no malloc_trim
        return False
    return True
