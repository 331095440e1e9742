"""Library: many articles in one data directory, added and removed incrementally, searched as a whole or in part.

A library is a directory (``CITEBOT_DATA_DIR``) holding

* ``library.sqlite3``: the catalog (:mod:`index.catalog`): articles, their text and words;
* ``vectors/KEY.npy``: each stored article version's sentence vectors (:mod:`index.vectors`);
* ``.library.sqlite3.lock``: the writers' lock (filelock, :mod:`index.locking`): adding, removing and
  re-embedding serialise on it;
* ``library.changed``: rewritten after every change, so a long-running reader notices a change with one
  ``stat`` per question and loads only what changed (:meth:`LibraryIndex.refresh`).

Adding an article embeds only that article (its sentences, once); a removal embeds nothing. The order of
writes makes a crash at any moment harmless: the vector file is written (atomically) before the catalog
row that names it is committed, and deleted after the row is gone; a file that no row names is garbage
from a crash and the next writer deletes it. A library can also live in memory only (``Library(None)``),
as ``citebot eval`` uses it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.background import Background, background_vectors, measure, questions_fingerprint
from index.catalog import ArticleRecord, Catalog, NewArticle, StoredText
from index.chunk import split_sentences
from index.config import IndexConfig, default_article
from index.errors import DataDirError, IndexCorruptError, LibraryError
from index.ingest import Article, read_article
from index.lexical import Postings, tokenize
from index.locking import hold
from index.vectors import MAX_SENTENCES, VectorIndex, load_vectors, save_vectors

if TYPE_CHECKING:  # the model (and torch) load only when something is embedded
    from index.embed import Embedder

log = logging.getLogger(__name__)

CATALOG = "library.sqlite3"
VECTORS = "vectors"
CHANGED = "library.changed"
#: How long a writer waits for another writer before giving up.
LOCK_TIMEOUT = 600.0
#: The source name of the bundled article in a new library.
BUNDLED = "bundled:idlib-article.txt"
_DIGIT = re.compile(r"\d")


def check_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` if needed and prove it is a writable directory; return it.

    Called before the model loads, so an unusable directory costs a second, not a model load.
    Permission is proved by creating and deleting a file, not by ``os.access`` alone: that
    also catches read-only file systems, and gives the right answer for root (who passes
    every permission check on an ordinary read-only directory, and really can write there).

    Raises:
        DataDirError: when it is a file, lies under a file, or cannot be created or written.
    """
    data_dir = Path(data_dir).expanduser()
    where, fix = f"data directory {data_dir}", "set CITEBOT_DATA_DIR to a writable directory"
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"{where} is a file, not a directory; {fix}")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"{where} cannot be created ({exc.strerror or type(exc).__name__}); {fix}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise DataDirError(f"{where} is not writable (permission denied); {fix}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=data_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"{where} is not writable ({exc.strerror or type(exc).__name__}); {fix}") from None
    return data_dir


# --- one article, ready to search -------------------------------------------------------------------


@dataclass
class ArticleData:
    """Everything needed to search one stored article version, in memory.

    Sentences are in order, paragraph by paragraph; every array indexed by
    sentence has one row per sentence.
    """

    record: ArticleRecord
    text: str
    paragraphs: tuple[tuple[int, int], ...]
    pages: tuple[int, ...] | None
    sentences: np.ndarray  # (S, 3): paragraph, start, end
    tokens: np.ndarray  # term ids of all sentences, concatenated
    token_offsets: np.ndarray  # (S + 1,)
    vectors: np.ndarray  # (S, dimension), unit length
    background: Background
    window: int

    def __post_init__(self) -> None:
        s = len(self.sentences)
        self.sentence_paragraph = self.sentences[:, 0].astype(np.int64) if s else np.zeros(0, dtype=np.int64)
        #: Sentences of paragraph ``p`` are ``paragraph_sentences[p]:paragraph_sentences[p + 1]``.
        self.paragraph_sentences = np.searchsorted(self.sentence_paragraph, np.arange(len(self.paragraphs) + 1))
        self.paragraph_tokens = self.token_offsets[self.paragraph_sentences]
        self.sentence_length = np.maximum(np.diff(self.token_offsets), 1).astype(np.float64)
        self.paragraph_length = np.maximum(np.diff(self.paragraph_tokens), 1).astype(np.float64)
        chunks = make_chunks_from_paragraphs(self.sentence_paragraph, self.window)
        self.chunk_first = np.array([a for a, _ in chunks], dtype=np.int64)
        self.chunk_last = np.array([b for _, b in chunks], dtype=np.int64)
        # A window's vector is the normalised sum of its sentences' vectors: no second pass of the model.
        norms = np.zeros(0)
        if s:
            zero = np.zeros((1, self.vectors.shape[1]))
            cumulative = np.vstack([zero, np.cumsum(self.vectors, axis=0, dtype=np.float64)])
            norms = np.linalg.norm(cumulative[self.chunk_last] - cumulative[self.chunk_first], axis=1)
        self.chunk_inverse_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 1e-9)
        self.paragraph_df = _document_frequency(self.tokens, self.paragraph_tokens)
        self.sentence_df = _document_frequency(self.tokens, self.token_offsets)
        texts = [self.text[int(a) : int(b)] for _, a, b in self.sentences]
        self.sentence_digit = np.array([bool(_DIGIT.search(t)) for t in texts], dtype=bool)
        self.sentence_words = np.array([len(t.split()) for t in texts], dtype=np.int64)
        owner = np.repeat(np.arange(s), np.diff(self.token_offsets))
        distinct = np.unique(self.tokens.astype(np.int64) << 32 | owner) & 0xFFFFFFFF if len(self.tokens) else owner
        self.sentence_unique = np.bincount(distinct, minlength=s)

    @property
    def key(self) -> int:
        """The stored version this is."""
        return self.record.key

    def sentence_text(self, number: int) -> str:
        """Return the text of sentence ``number`` (0-based, article-wide)."""
        _, start, end = self.sentences[number]
        return self.text[int(start) : int(end)]

    def paragraph_text(self, number: int) -> str:
        """Return the text of paragraph ``number`` (0-based)."""
        start, end = self.paragraphs[number]
        return self.text[start:end]

    def to_article(self) -> Article:
        """Return the stored text as an :class:`~index.ingest.Article`."""
        r = self.record
        return Article(self.text, self.paragraphs, r.title, r.date, r.source, r.fingerprint)


def background_ok(mean: float, std: float) -> bool:
    """Return whether a stored background is possible: a finite mean cosine in [-1, 1] and spread in [0, 1]."""
    return math.isfinite(mean) and math.isfinite(std) and -1.0 <= mean <= 1.0 and 0.0 <= std <= 1.0


def _identity(record: ArticleRecord) -> tuple[str, float, float]:
    """What must match for an article's loaded vectors and background to be current."""
    return (record.vectors_sha256, record.background_mean, record.background_std)


def make_chunks_from_paragraphs(sentence_paragraph: np.ndarray, window: int) -> list[tuple[int, int]]:
    """Return ``(first, last)`` sentence ranges of windows of ``window`` sentences inside each paragraph.

    The same windows as :func:`index.chunk.make_chunks`: stride one, never crossing a paragraph.
    """
    out: list[tuple[int, int]] = []
    n = len(sentence_paragraph)
    i = 0
    while i < n:
        j = i
        while j < n and sentence_paragraph[j] == sentence_paragraph[i]:
            j += 1
        for first in range(i, max(i + 1, j - window + 1)):
            out.append((first, min(first + window, j)))
        i = j
    return out


def _document_frequency(tokens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct term ids of the documents ``tokens[offsets[i]:offsets[i+1]]`` and their df."""
    if not len(tokens):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    pairs = np.unique(tokens.astype(np.int64) << 32 | owner)
    terms, counts = np.unique(pairs >> 32, return_counts=True)
    return terms, counts


def _lookup(terms: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Return ``counts`` of the ``query`` term ids (0 where absent) from a sorted ``terms`` array."""
    if not len(terms) or not len(query):
        return np.zeros(len(query), dtype=np.float64)
    at = np.clip(np.searchsorted(terms, query), 0, len(terms) - 1)
    return np.where(terms[at] == query, counts[at], 0).astype(np.float64)


# --- the searchable library ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionStats:
    """BM25 and IDF statistics of the collection searched (the library, or the articles in scope).

    Arrays hold one value per query term id asked for.
    """

    paragraphs: int
    paragraph_df: np.ndarray
    paragraph_length: float
    sentences: int
    sentence_df: np.ndarray
    sentence_length: float


class LibraryIndex:
    """The whole library in memory, ready to search: per-article data, one faiss index, one BM25 postings list.

    Made by :meth:`Library.index`; :meth:`refresh` brings it up to date with the catalog.
    """

    def __init__(self, library: Library, embedder: Embedder) -> None:
        self.library = library
        self.embedder = embedder
        self.dimension = embedder.dimension
        self.articles: dict[int, ArticleData] = {}  # by key
        self.vocabulary: dict[str, int] = {}
        self._last_term = 0
        self.vectors = VectorIndex(self.dimension, exact_limit=library.config.exact_limit)
        self.postings = Postings()
        self.base: dict[int, int] = {}  # key -> global number of its first paragraph
        self._next_base = 0
        self.paragraph_key = np.zeros(0, dtype=np.int64)
        self.paragraph_local = np.zeros(0, dtype=np.int64)
        self.paragraph_length = np.zeros(0, dtype=np.float64)
        self.alive = np.zeros(0, dtype=bool)
        self._paragraph_df = np.zeros(0)
        self._sentence_df = np.zeros(0)
        self._totals = np.zeros(4)  # paragraphs, sentences, their summed lengths
        self.generation = -1
        self._seen: tuple[int, int, int] | None = None
        self._checked = 0.0

    # --- loading -------------------------------------------------------------------------------------

    def _load_vocabulary(self) -> None:
        for term_id, term in self.library.catalog.vocabulary(self._last_term):
            self.vocabulary[term] = term_id
            self._last_term = max(self._last_term, term_id)

    def _load(self, record: ArticleRecord) -> ArticleData:
        if not background_ok(record.background_mean, record.background_std):
            raise IndexCorruptError(f"background {record.background_mean}, {record.background_std} is out of range")
        stored = self.library.catalog.text(record.key)
        vectors = self.library.load_vectors(record)
        if len(vectors) != len(stored.sentences):
            raise IndexCorruptError(
                f"article {record.id}: {len(vectors)} vectors for {len(stored.sentences)} sentences"
            )
        return ArticleData(
            record=record,
            text=stored.text,
            paragraphs=stored.paragraphs,
            pages=stored.pages,
            sentences=stored.sentences,
            tokens=stored.tokens,
            token_offsets=stored.token_offsets,
            vectors=vectors,
            background=Background(record.background_mean, record.background_std),
            window=self.library.config.window,
        )

    def _load_one(self, record: ArticleRecord) -> ArticleData | None:
        """Load ``record``'s data, embedding it again (one warning) when its stored vectors are damaged.

        Returns ``None`` when the article was removed or replaced by another process while it was being read
        (the next refresh sees the change).
        """
        try:
            return self._load(record)
        except LibraryError:
            current = self.library.catalog.record(record.id)
            if current is None or current.key != record.key:
                return None  # removed or replaced while we read
            raise
        except IndexCorruptError as exc:
            current = self.library.catalog.record(record.id)
            if current is None or current.key != record.key:
                return None
            log.warning("the index of article %s is damaged (%s); embedding it again", record.id, exc)
            repaired = self.library.repair(record, self.embedder)
            return self._load(repaired) if repaired is not None else None

    def _place(self, loaded: list[ArticleData]) -> None:
        """Give ``loaded`` global paragraph numbers, add their words to the postings and the frequencies."""
        keys, locals_, lengths, owners, tokens = [], [], [], [], []
        for data in loaded:
            base = self._next_base
            n = len(data.paragraphs)
            self._next_base += n
            self.base[data.key] = base
            keys.append(np.full(n, data.key, dtype=np.int64))
            locals_.append(np.arange(n, dtype=np.int64))
            lengths.append(data.paragraph_length)
            owners.append(np.repeat(np.arange(n), np.diff(data.paragraph_tokens)) + base)
            tokens.append(data.tokens)
            self._count(data, +1)
        if not loaded:
            return
        self.paragraph_key = np.concatenate([self.paragraph_key, *keys])
        self.paragraph_local = np.concatenate([self.paragraph_local, *locals_])
        self.paragraph_length = np.concatenate([self.paragraph_length, *lengths])
        self.alive = np.concatenate([self.alive, np.ones(sum(len(k) for k in keys), dtype=bool)])
        self.postings.add(np.concatenate(owners), np.concatenate(tokens))

    def _count(self, data: ArticleData, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) ``data``'s counts from the library-wide frequencies."""
        top = max(int(data.paragraph_df[0].max(initial=0)), int(data.sentence_df[0].max(initial=0))) + 1
        if top > len(self._paragraph_df):
            grow = max(top, 2 * len(self._paragraph_df))
            self._paragraph_df = np.concatenate([self._paragraph_df, np.zeros(grow - len(self._paragraph_df))])
            self._sentence_df = np.concatenate([self._sentence_df, np.zeros(grow - len(self._sentence_df))])
        np.add.at(self._paragraph_df, data.paragraph_df[0], sign * data.paragraph_df[1])
        np.add.at(self._sentence_df, data.sentence_df[0], sign * data.sentence_df[1])
        self._totals += sign * np.array(
            [len(data.paragraphs), len(data.sentences), data.paragraph_length.sum(), data.sentence_length.sum()]
        )

    def _drop(self, key: int) -> None:
        data = self.articles.pop(key, None)
        if data is None:
            return
        base = self.base.pop(key)
        self.alive[base : base + len(data.paragraphs)] = False
        self._count(data, -1)
        self.vectors.remove(key)

    def refresh(self, force: bool = False) -> bool:
        """Bring the index up to date with the catalog; return whether anything changed.

        Costs one ``stat`` of ``library.changed`` when nothing changed (and a catalog read every
        30 seconds, in case a writer died between its commit and touching that file).
        """
        seen = self.library.changed_stamp()
        now = time.monotonic()
        if not force and seen == self._seen and now - self._checked < 30.0:
            return False
        self._seen, self._checked = seen, now
        generation = self.library.catalog.generation
        if generation == self.generation and not force:
            return False
        records = {r.key: r for r in self.library.catalog.records()}
        # An article embedded again (a repair, another model) or measured again keeps its key: reload it too.
        stale = [
            key
            for key, data in self.articles.items()
            if key in records and _identity(records[key]) != _identity(data.record)
        ]
        gone = [key for key in self.articles if key not in records or key in stale]
        new = [key for key in records if key not in self.articles or key in stale]
        for key in gone:
            self._drop(key)
        if new:
            self._load_vocabulary()
            limit = self.library.config.exact_limit
            incoming = sum(records[k].sentences for k in new)
            if self.vectors.kind == "exact" and self.vectors.total + incoming > limit:
                # Crossing to the IVF index: train it on a sample, drawn from the files without reading them whole.
                everything = {k: d.vectors for k, d in self.articles.items()}
                for key in new:
                    with contextlib.suppress(IndexCorruptError):
                        everything[key] = self.library.load_vectors(records[key], mapped=True)
                self.vectors = VectorIndex.build(self.dimension, everything, exact_limit=limit, add=False)
                for key, data in self.articles.items():
                    self.vectors.add(key, data.vectors)
            loaded = {}
            for key in sorted(new):
                data = self._load_one(records[key])
                if data is None:
                    continue
                self.vectors.add(key, data.vectors)
                if self.library.directory is not None:
                    # faiss has its own copy now: keep the vectors mapped from their file rather than in memory.
                    with contextlib.suppress(IndexCorruptError):
                        data.vectors = self.library.load_vectors(data.record, mapped=True)
                loaded[key] = data
            self.articles.update(loaded)
            self._place(list(loaded.values()))
        if gone and self.alive.size and self.alive.sum() < 0.5 * self.alive.size:
            self._rebuild_numbers()
        self.generation = generation
        return bool(gone or new)

    def _rebuild_numbers(self) -> None:
        """Renumber the paragraphs of the live articles and rebuild the postings (after many removals)."""
        articles = list(self.articles.values())
        self.base.clear()
        self._next_base = 0
        self.paragraph_key = np.zeros(0, dtype=np.int64)
        self.paragraph_local = np.zeros(0, dtype=np.int64)
        self.paragraph_length = np.zeros(0, dtype=np.float64)
        self.alive = np.zeros(0, dtype=bool)
        self.postings = Postings()
        self._paragraph_df = np.zeros(0)
        self._sentence_df = np.zeros(0)
        self._totals = np.zeros(4)
        self._place(articles)

    # --- questions -------------------------------------------------------------------------------------

    def keys_of(self, ids: Collection[int] | None) -> list[int] | None:
        """Return the stored keys of article ``ids`` (``None``: the whole library)."""
        if ids is None:
            return None
        wanted = set(ids)
        return [key for key, data in self.articles.items() if data.record.id in wanted]

    def stats(self, query: np.ndarray, keys: Collection[int] | None) -> CollectionStats:
        """Return the collection statistics of the query term ids over ``keys`` (``None``: all articles)."""
        if keys is None:
            known = (query >= 0) & (query < len(self._paragraph_df))
            at = np.where(known, query, 0)
            paragraphs, sentences, p_len, s_len = self._totals
            return CollectionStats(
                paragraphs=int(paragraphs),
                paragraph_df=np.where(known, self._paragraph_df[at] if len(self._paragraph_df) else 0, 0.0),
                paragraph_length=float(p_len / paragraphs) if paragraphs else 1.0,
                sentences=int(sentences),
                sentence_df=np.where(known, self._sentence_df[at] if len(self._sentence_df) else 0, 0.0),
                sentence_length=float(s_len / sentences) if sentences else 1.0,
            )
        chosen = [self.articles[k] for k in keys]
        p_df = np.zeros(len(query))
        s_df = np.zeros(len(query))
        paragraphs = sentences = 0
        p_len = s_len = 0.0
        for data in chosen:
            p_df += _lookup(*data.paragraph_df, query)
            s_df += _lookup(*data.sentence_df, query)
            paragraphs += len(data.paragraphs)
            sentences += len(data.sentences)
            p_len += float(data.paragraph_length.sum())
            s_len += float(data.sentence_length.sum())
        return CollectionStats(
            paragraphs=paragraphs,
            paragraph_df=p_df,
            paragraph_length=p_len / paragraphs if paragraphs else 1.0,
            sentences=sentences,
            sentence_df=s_df,
            sentence_length=s_len / sentences if sentences else 1.0,
        )

    @property
    def paragraphs(self) -> int:
        """How many paragraphs the library holds."""
        return sum(len(d.paragraphs) for d in self.articles.values())


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
    kind: str
    meta: dict[str, str | None]


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
            self.catalog = Catalog(self.directory / CATALOG, readonly=readonly)
        self._index: LibraryIndex | None = None

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """Return whether ``data_dir`` holds a library."""
        return (Path(data_dir).expanduser() / CATALOG).is_file()

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
        with hold(self.directory / CATALOG, "changing the library", timeout=LOCK_TIMEOUT):
            try:
                self._collect_garbage()
                yield
            finally:
                with contextlib.suppress(OSError):
                    self._mark_changed()

    def _collect_garbage(self) -> None:
        """Delete vector files and temporary files that no catalog row names (left by a crash)."""
        assert self.directory is not None
        folder = self.directory / VECTORS
        if not folder.is_dir():
            return
        keys = set(self.catalog.keys())
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

    def index(self, embedder: Embedder) -> LibraryIndex:
        """Return the searchable library for ``embedder``'s vectors, loading it on first use.

        A new library is seeded with the bundled article; vectors of another model are re-embedded.
        """
        self.ensure_ready(embedder)
        if self._index is None:
            self._index = LibraryIndex(self, embedder)
        self._index.refresh(force=self._index.generation < 0)
        return self._index

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
            self.catalog.set_vectors(record.id, record.vectors_sha256, background.mean, background.std)

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
            self.catalog.set_vectors(record.id, sha, background.mean, background.std)

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
            try:
                vectors = self.load_vectors(current)
                sha = current.vectors_sha256
            except IndexCorruptError:
                texts = [stored.text[int(a) : int(b)] for _, a, b in stored.sentences]
                vectors = embedder.encode(texts, batch_size=self.config.batch_size)
                sha = self._write_vectors(current.key, vectors)
            if sha == current.vectors_sha256 and background_ok(current.background_mean, current.background_std):
                return current  # another process repaired it first
            background = _background(vectors, stored, self.config.window, embedder)
            self.catalog.set_vectors(current.id, sha, background.mean, background.std)
            return self.catalog.record(current.id)

    # --- writing ----------------------------------------------------------------------------------------

    def prepare(self, article: Article, embedder: Embedder, kind: str = "text", **meta: str | None) -> Prepared:
        """Split, tokenise and embed ``article`` (the slow part of adding; no lock is held)."""
        sentences = split_sentences(article)
        if len(sentences) >= MAX_SENTENCES:
            raise LibraryError(f"{article.source}: too many sentences ({len(sentences)}; at most {MAX_SENTENCES - 1})")
        texts = [article.text[s.start : s.end] for s in sentences]
        terms = [tokenize(t) for t in texts]
        vectors = embedder.encode(texts, batch_size=self.config.batch_size)
        rows = np.array([[s.paragraph, s.start, s.end] for s in sentences], dtype=np.int64).reshape(-1, 3)
        stored = StoredText(
            article.text, article.paragraphs, rows, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)
        )
        background = _background(vectors, stored, self.config.window, embedder)
        return Prepared(article, rows, terms, vectors, background, kind, dict(meta))

    def _write_vectors(self, key: int, vectors: np.ndarray) -> str:
        if self.directory is None:
            self._memory_vectors[key] = np.ascontiguousarray(vectors, dtype=np.float32)
            return "memory"
        return save_vectors(self._vector_path(key), vectors)

    def _store(self, prepared: Prepared, replace: ArticleRecord | None = None) -> ArticleRecord:
        key = self.catalog.next_key()
        sha = self._write_vectors(key, prepared.vectors)
        a = prepared.article
        record = self.catalog.insert(
            key,
            NewArticle(
                source=a.source,
                fingerprint=a.fingerprint,
                title=a.title,
                date=a.date or prepared.meta.get("date"),
                kind=prepared.kind,
                text=a.text,
                paragraphs=a.paragraphs,
                sentences=prepared.sentences,
                terms=prepared.terms,
                vectors_sha256=sha,
                background_mean=prepared.background.mean,
                background_std=prepared.background.std,
                url=prepared.meta.get("url") or getattr(a, "url", None),
                site=prepared.meta.get("site") or getattr(a, "site", None),
                author=prepared.meta.get("author") or getattr(a, "author", None),
                fetched_at=prepared.meta.get("fetched_at") or getattr(a, "fetched_at", None),
                etag=prepared.meta.get("etag"),
                last_modified=prepared.meta.get("last_modified"),
                feed=prepared.meta.get("feed"),
                pages=getattr(a, "pages", None),
            ),
            replace=replace,
        )
        if replace is not None:
            self._forget_vectors(replace.key)
        return record

    def _forget_vectors(self, key: int) -> None:
        if self.directory is None:
            self._memory_vectors.pop(key, None)
        else:
            with contextlib.suppress(OSError):
                self._vector_path(key).unlink()

    def add(
        self,
        article: Article,
        embedder: Embedder,
        kind: str = "text",
        on_prepared: Callable[[], None] | None = None,
        **meta: str | None,
    ) -> AddResult:
        """Add ``article``: a no-op when the library has its content, a replacement when its source has another.

        Only this article is embedded; nothing stored is recomputed.
        """
        started = time.perf_counter()
        self.ensure_ready(embedder)
        existing = self.catalog.by_fingerprint(article.fingerprint)
        if existing is not None:
            return AddResult("unchanged", existing, time.perf_counter() - started)
        prepared = self.prepare(article, embedder, kind, **meta)
        if on_prepared is not None:
            on_prepared()
        with self.writing():
            existing = self.catalog.by_fingerprint(article.fingerprint)
            if existing is not None:
                return AddResult("unchanged", existing, time.perf_counter() - started)
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
            for record in gone:
                self._forget_vectors(record.key)
        return gone


def _background(vectors: np.ndarray, stored: StoredText, window: int, embedder: Embedder) -> Background:
    """Return how close the background questions come to an article's sentences and windows."""
    paragraph_of = stored.sentences[:, 0] if len(stored.sentences) else np.zeros(0, dtype=np.int64)
    spans = make_chunks_from_paragraphs(paragraph_of, window)
    if len(vectors):
        cumulative = np.vstack([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, axis=0, dtype=np.float64)])
        sums = np.array([cumulative[b] - cumulative[a] for a, b in spans])
        chunks = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        units = np.vstack([chunks, vectors]).astype(np.float32)
    else:
        units = vectors
    return measure(units, background_vectors(embedder))
