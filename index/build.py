"""Build: turn an article into an :class:`~index.store.ArticleIndex`, or reuse the stored one."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from index.background import background_vectors, measure
from index.chunk import make_chunks, split_sentences
from index.config import IndexConfig
from index.embed import Embedder
from index.errors import IndexCorruptError
from index.ingest import Article
from index.locking import hold
from index.retrieve import Retriever
from index.store import (
    ArticleIndex,
    check_data_dir,
    flat_index,
    index_dir,
    index_key,
    load_index,
    prune_stale,
    save_index,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """How :func:`open_index` got its index.

    Attributes:
        built: ``True`` when the index was (re)built, ``False`` when it was loaded.
        reason: why it was built (``"new"``, ``"changed"``, ``"damaged: ..."``) or ``"reused"``.
        seconds: the time taken to load or build it.
        directory: where it is stored, or ``None`` when it is kept in memory only.
    """

    built: bool
    reason: str
    seconds: float
    directory: Path | None


def build_index(article: Article, embedder: Embedder, config: IndexConfig) -> ArticleIndex:
    """Split ``article`` into sentences and chunks, embed both and measure the background; nothing is written."""
    sentences = split_sentences(article)
    chunks = make_chunks(sentences, config.window)
    texts = [article.text[c.start : c.end] for c in chunks] + [article.text[s.start : s.end] for s in sentences]
    vectors = embedder.encode(texts, batch_size=config.batch_size)
    manifest = {
        **index_key(article, embedder.fingerprint, config.window),
        "source": article.source,
        "model_name": embedder.name,
        "paragraphs": len(article.paragraphs),
        "sentences": len(sentences),
        "chunks": len(chunks),
    }
    return ArticleIndex(
        article=article,
        sentences=sentences,
        chunks=chunks,
        chunk_vectors=flat_index(vectors[: len(chunks)]),
        sentence_vectors=flat_index(vectors[len(chunks) :]),
        manifest=manifest,
        background=measure(vectors, background_vectors(embedder)),
    )


def open_index(
    article: Article, embedder: Embedder, config: IndexConfig, persist: bool = True
) -> tuple[ArticleIndex, BuildReport]:
    """Return the index of ``article``: the stored one when it matches, else a fresh build.

    A stored index is reused only when its manifest names the same cleaned
    article, model and chunking. A damaged one is rebuilt with a one-line
    warning in the log. Building holds the index's lock, so processes started
    together build it once: the others wait and then reuse it. With
    ``persist=False`` nothing is read or written.
    """
    started = time.perf_counter()
    if not persist:
        index = build_index(article, embedder, config)
        return index, BuildReport(True, "in memory", time.perf_counter() - started, None)
    key = index_key(article, embedder.fingerprint, config.window)
    directory = index_dir(Path(config.data_dir), article, key)
    with contextlib.suppress(IndexCorruptError):  # believed only under the lock, below
        loaded = load_index(directory, key)
        if loaded is not None:
            return _as_read(loaded, article), BuildReport(False, "reused", time.perf_counter() - started, directory)
    with hold(directory, "building the index"):
        reason = "new"
        try:
            loaded = load_index(directory, key)  # another process may have built it while we waited
        except IndexCorruptError as exc:
            log.warning("stored index at %s is damaged (%s); rebuilding it", directory, exc)
            loaded, reason = None, f"damaged: {exc}"
        if loaded is not None:
            return _as_read(loaded, article), BuildReport(False, "reused", time.perf_counter() - started, directory)
        index = build_index(article, embedder, config)
        save_index(index, directory)
        removed = prune_stale(Path(config.data_dir), directory, article.source)
    if removed and reason == "new":
        reason = "changed"
    return index, BuildReport(True, reason, time.perf_counter() - started, directory)


def _as_read(index: ArticleIndex, article: Article) -> ArticleIndex:
    """Return the stored ``index`` telling where ``article`` was read from this time, not where it first was."""
    index.article = dataclasses.replace(index.article, source=article.source)
    return index


def open_article(
    article: Article, config: IndexConfig, embedder: Embedder | None = None, persist: bool = True
) -> tuple[Retriever, BuildReport]:
    """Return a :class:`Retriever` over ``article`` and how its index was got.

    The data directory is checked first (see :func:`~index.store.check_data_dir`), then the
    model ``config.model`` is loaded unless an ``embedder`` is given.

    Raises:
        DataDirError: when the data directory cannot hold indexes.
        ModelError: when the model cannot be loaded.
    """
    if persist:
        check_data_dir(Path(config.data_dir))
    embedder = embedder or Embedder(config.model)
    index, report = open_index(article, embedder, config, persist=persist)
    return Retriever(index, embedder), report
