"""Library index: the whole library in memory, ready to search, kept up to date with the catalog.

Per-article arrays (:class:`ArticleData`: sentences, their words and vectors, sentence windows), one faiss
index over every sentence vector (:mod:`index.search.vector_index`) and one BM25 postings list
(:mod:`index.search.bm25`). A reader notices a change with one ``stat`` per question
(:meth:`LibraryIndex.refresh`) and loads only what changed. A new one starts from what an earlier process persisted
in the data directory's ``search/`` (:mod:`index.search.persisted`) and reads from the vector files only the articles
changed since; it writes ``search/`` again when it read a tenth of the library or 1,000 paragraphs. The searcher
owns it (:class:`index.search.retrieve.Searcher`); the library on disk (:mod:`index.store.library`) knows nothing of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from index.analysis.background import Background, background_ok
from index.analysis.sentences import sentence_windows
from index.errors import IndexCorruptError, LibraryError
from index.reading.article import Article
from index.search import persisted
from index.search.bm25 import Postings
from index.search.engine import CandidateEngine, open_engine
from index.search.vector_index import VectorIndex
from index.store.catalog import ArticleRecord
from index.store.counts import document_frequency

if TYPE_CHECKING:
    from index.analysis.embed import Embedder
    from index.store.library import Library

log = logging.getLogger(__name__)
_DIGIT = re.compile(r"\d")


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
        chunks = sentence_windows(self.sentence_paragraph, self.window)
        self.chunk_first = np.array([a for a, _ in chunks], dtype=np.int64)
        self.chunk_last = np.array([b for _, b in chunks], dtype=np.int64)
        # A window's vector is the normalised sum of its sentences' vectors: no second pass of the model.
        norms = np.zeros(0)
        if s:
            zero = np.zeros((1, self.vectors.shape[1]))
            cumulative = np.vstack([zero, np.cumsum(self.vectors, axis=0, dtype=np.float64)])
            norms = np.linalg.norm(cumulative[self.chunk_last] - cumulative[self.chunk_first], axis=1)
        self.chunk_inverse_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 1e-9)
        self.paragraph_df = document_frequency(self.tokens, self.paragraph_tokens)
        self.sentence_df = document_frequency(self.tokens, self.token_offsets)
        texts = [self.text[int(a) : int(b)] for _, a, b in self.sentences]
        self.sentence_digit = np.array([bool(_DIGIT.search(t)) for t in texts], dtype=bool)
        self.sentence_words = np.array([len(t.split()) for t in texts], dtype=np.int64)
        owner = np.repeat(np.arange(s), np.diff(self.token_offsets))
        distinct = np.unique(self.tokens.astype(np.int64) << 32 | owner) & 0xFFFFFFFF if len(self.tokens) else owner
        self.sentence_unique = np.bincount(distinct, minlength=s)

    @classmethod
    def restored(
        cls,
        record: ArticleRecord,
        text: str,
        paragraphs: tuple[tuple[int, int], ...],
        pages: tuple[int, ...] | None,
        vectors: np.ndarray,
        window: int,
        arrays: dict[str, Any],
    ) -> ArticleData:
        """Return the article as it was persisted: ``arrays`` holds :data:`ARRAYS`, nothing is computed again."""
        data = cls.__new__(cls)
        data.record, data.text, data.paragraphs, data.pages = record, text, paragraphs, pages
        data.vectors, data.window = vectors, window
        data.background = Background(record.background_mean, record.background_std)
        for name in ARRAYS:
            setattr(data, name, arrays[name])
        return data

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
        """Return the stored text as an :class:`~index.reading.ingest.Article`."""
        r = self.record
        return Article(self.text, self.paragraphs, r.title, r.date, r.source, r.fingerprint)


#: The arrays of an :class:`ArticleData` that are persisted (the catalog's and those ``__post_init__`` derives).
ARRAYS = (
    "sentences",
    "tokens",
    "token_offsets",
    "sentence_paragraph",
    "paragraph_sentences",
    "paragraph_tokens",
    "sentence_length",
    "paragraph_length",
    "chunk_first",
    "chunk_last",
    "chunk_inverse_norm",
    "paragraph_df",
    "sentence_df",
    "sentence_digit",
    "sentence_words",
    "sentence_unique",
)
#: Of :data:`ARRAYS`, those that are pairs (sorted term ids, their counts).
PAIRS = ("paragraph_df", "sentence_df")
#: A reader writes the persisted index again once this share of the library's paragraphs, or :data:`PERSIST_MOST`
#: paragraphs, were read from the vector files (or dropped) since it was read or written: an ``add`` of one article to
#: a big library writes nothing, and no process opening it reads more than about 1,000 paragraphs from their files
#: (0.5 s) after the persisted index, where writing it costs seconds at 100k paragraphs.
PERSIST_SHARE = 0.1
PERSIST_MOST = 1000


#: With a Qdrant engine, the most sentences of articles a process keeps read (about 31 MB of 384-wide vectors): the
#: articles a question's candidates come from are read on demand and the most recently used kept.
CACHED_SENTENCES = 20_000


class ArticleCache(MutableMapping[int, ArticleData]):
    """The library's articles by key, as :class:`LibraryIndex` holds them with a Qdrant engine: every record, and
    the data (:class:`ArticleData`) of only the most recently used, read by ``load`` when asked for.

    ``cache[key]`` reads an article not held (``KeyError`` when it is not in the library, or was removed while it
    was read); ``key in cache`` and ``len(cache)`` read nothing.
    """

    def __init__(self, load: Callable[[ArticleRecord], ArticleData | None], most: int = CACHED_SENTENCES) -> None:
        self.records: dict[int, ArticleRecord] = {}
        self._load = load
        self._most = most
        self._held: OrderedDict[int, ArticleData] = OrderedDict()
        self._sentences = 0

    def __getitem__(self, key: int) -> ArticleData:
        data = self._held.get(key)
        if data is not None:
            self._held.move_to_end(key)
            return data
        data = self._load(self.records[key])
        if data is None:
            raise KeyError(key)
        self._hold(data)
        return data

    def __setitem__(self, key: int, data: ArticleData) -> None:
        self.records[key] = data.record
        self._release(key)
        self._hold(data)

    def __delitem__(self, key: int) -> None:
        del self.records[key]
        self._release(key)

    def __contains__(self, key: object) -> bool:
        return key in self.records

    def __iter__(self) -> Iterator[int]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def held(self) -> int:
        """How many articles' data is held now."""
        return len(self._held)

    def peek(self, key: int) -> ArticleData | None:
        """Return ``key``'s data if it is held (reading nothing)."""
        return self._held.get(key)

    def follow(self, records: Mapping[int, ArticleRecord]) -> bool:
        """Take the catalog's ``records``: forget the data of articles removed or stored anew; return whether the
        library changed."""
        changed = records.keys() != self.records.keys() or any(
            _identity(records[key]) != _identity(record) for key, record in self.records.items()
        )
        for key, data in list(self._held.items()):
            if key not in records or _identity(records[key]) != _identity(data.record):
                self._release(key)
        self.records = dict(records)
        return changed

    def _hold(self, data: ArticleData) -> None:
        self._held[data.key] = data
        self._sentences += len(data.sentences)
        while self._sentences > self._most and len(self._held) > 1:
            self._release(next(iter(self._held)))

    def _release(self, key: int) -> None:
        data = self._held.pop(key, None)
        if data is not None:
            self._sentences -= len(data.sentences)


def _identity(record: ArticleRecord) -> tuple[str, float, float]:
    """What must match for an article's loaded vectors and background to be current."""
    return (record.vectors_sha256, record.background_mean, record.background_std)


def _lookup(terms: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Return ``counts`` of the ``query`` term ids (0 where absent) from a sorted ``terms`` array."""
    if not len(terms) or not len(query):
        return np.zeros(len(query), dtype=np.float64)
    at = np.clip(np.searchsorted(terms, query), 0, len(terms) - 1)
    return np.where(terms[at] == query, counts[at], 0).astype(np.float64)


def _stat(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    """Return ``path``'s identity (inode, mtime_ns, size), or ``None`` when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _placeholder(key: int, paragraphs: int, sentences: int) -> ArticleRecord:
    """Return a record for a persisted article that is no longer current (it is dropped at once)."""
    return ArticleRecord(
        -1, key, "", "", "", None, None, None, None, "text", paragraphs, sentences, 0, 0, "", None, None, None, None,
        "", 0.0, 1.0,
    )  # fmt: skip


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

    @classmethod
    def of(
        cls, paragraph_df: np.ndarray, sentence_df: np.ndarray, totals: tuple[int, int, float, float]
    ) -> CollectionStats:
        """Return the statistics of document frequencies and ``totals`` (paragraphs, sentences, their summed lengths
        in terms): the mean lengths are 1 for an empty collection."""
        paragraphs, sentences, p_len, s_len = totals
        return cls(
            paragraphs=int(paragraphs),
            paragraph_df=paragraph_df,
            paragraph_length=float(p_len / paragraphs) if paragraphs else 1.0,
            sentences=int(sentences),
            sentence_df=sentence_df,
            sentence_length=float(s_len / sentences) if sentences else 1.0,
        )


class LibraryIndex:
    """The library ready to search. Searched locally (the default), the whole library is in memory: per-article
    data, one faiss index, one BM25 postings list. Searched on Qdrant (:attr:`lean`), only the catalog's records
    are: the engine finds the candidates, their articles are read on demand (:class:`ArticleCache`) and the
    library's term counts read from the catalog.

    Made by :meth:`Library.index`; :meth:`refresh` brings it up to date with the catalog.
    """

    def __init__(self, library: Library, embedder: Embedder, engine: CandidateEngine | None = None) -> None:
        self.library = library
        self.embedder = embedder
        self.dimension = embedder.dimension
        #: Whether the first stage is the Qdrant engine's, so this process holds no more of the library than it reads.
        self.lean = self.search != "local"
        self.articles: MutableMapping[int, ArticleData] = ArticleCache(self._load_one) if self.lean else {}  # by key
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
        #: How this index was made (tests and logs read it): articles restored from the persisted index, articles
        #: read from their vector files (each hashed once), times this process persisted the index.
        self.made = {"restored": 0, "read": 0, "persisted": 0}
        self._identities: dict[int, tuple[int, int, int]] = {}  # key -> its vector file as checked
        self._unpersisted = 0  # paragraphs read or dropped since the persisted index was read or written
        self._persisted = False  # whether the persisted index on disk was read or written by this process
        self._cannot_persist = False
        self._engine = engine  # None: the one the configuration names, opened on first use
        self._engine_generation = -1  # the catalog generation the engine was last synced to

    # --- the first stage's engine (index.search.engine) -----------------------------------------------

    @property
    def search(self) -> str:
        """Where the first stage searches (:attr:`~index.config.IndexConfig.search`); a library in memory (no data
        directory: an evaluation, tests) is always searched locally, so it never writes into a library's engine."""
        return self.library.config.search if self.library.directory is not None else "local"

    @property
    def engine(self) -> CandidateEngine:
        """Where the first stage searches: this index's own faiss index and postings, or Qdrant (opened on first
        use, :func:`index.search.engine.open_engine`)."""
        if self._engine is None:
            config = self.library.config
            if self.search != config.search:
                config = replace(config, search=self.search)
            self._engine = open_engine(config, self.dimension, self, self.library.directory)
        return self._engine

    @property
    def records(self) -> Mapping[int, ArticleRecord]:
        """The library's articles' records, by key (read from the catalog at the last refresh)."""
        if isinstance(self.articles, ArticleCache):
            return self.articles.records
        return {key: data.record for key, data in self.articles.items()}

    def article(self, article_id: int) -> ArticleData | None:
        """Return the stored text and arrays of the article ``article_id`` (read on demand when lean), or ``None``
        when the library (at its last refresh) does not hold it."""
        key = next((k for k, r in self.records.items() if r.id == article_id), None)
        return None if key is None else self.articles.get(key)

    def term_ids(self, terms: list[str]) -> np.ndarray:
        """Return the term ids of ``terms`` (-1 for a term the library does not hold)."""
        known = self.library.catalog.term_ids(terms) if self.lean else self.vocabulary
        return np.array([known.get(t, -1) for t in terms], dtype=np.int64)

    def rebuild_engine(self) -> int:
        """Write the engine anew from the library (:meth:`CandidateEngine.clear`, then a sync); return how many
        articles it holds."""
        self.refresh()
        self.engine.clear()
        self._engine_generation = -1
        self.refresh()
        return len(self.articles)

    def close(self) -> None:
        """Release the engine (an Edge shard may then be opened by another process)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

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
            data = self._load(record)
            self.made["read"] += 1
            return data
        except LibraryError:
            current = self.library.catalog.record(record.id)
            if current is None or current.key != record.key:
                return None  # removed or replaced while we read
            raise
        except IndexCorruptError as exc:
            current = self.library.catalog.record(record.id)
            if current is None or current.key != record.key:
                return None
            log.warning("the index of article %s is damaged (%s); repairing it", record.id, exc)
            repaired = self.library.repair(record, self.embedder)
            if repaired is None:
                return None
            try:
                data = self._load(repaired)
                self.made["read"] += 1
                return data
            except IndexCorruptError as again:
                raise LibraryError(
                    f"article {record.id} is damaged and could not be repaired ({again}); "
                    f"remove it (citebot remove {record.id}) and add it again"
                ) from None

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
        """Bring the index up to date with the catalog (:meth:`refresh_articles`), and a Qdrant engine with the index
        (:meth:`sync_engine`); return whether anything changed."""
        changed = self.refresh_articles(force)
        self.sync_engine()
        return changed

    def sync_engine(self) -> None:
        """Bring a Qdrant engine up to date with the index (nothing when it is current, or the engine is local).

        An engine that could not be synced (:class:`~index.search.engine.EngineError`: the server down) is synced
        again at the next call.
        """
        if self.search != "local" and self._engine_generation != self.generation:
            records = self.records
            self.engine.sync(records, lambda key: self._read(records[key]), self.library.catalog.terms_of)
            self._engine_generation = self.generation

    def _read(self, record: ArticleRecord) -> ArticleData | None:
        """Return ``record``'s data: the one held, or read (not kept: an engine writing the library reads it all)."""
        if not self.lean:
            return self.articles.get(record.key)
        assert isinstance(self.articles, ArticleCache)
        held = self.articles.peek(record.key)
        return held if held is not None else self._load_one(record)

    def refresh_articles(self, force: bool = False) -> bool:
        """Bring the index up to date with the catalog, the engine left as it is; return whether anything changed.

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
        if isinstance(self.articles, ArticleCache):
            changed = self.articles.follow(records)
            self.generation = generation
            return changed
        if self.generation < 0 and not self.articles and self.library.directory is not None:
            self._restore(records)
        # An article embedded again (a repair, another model) or measured again keeps its key: reload it too.
        stale = [
            key
            for key, data in self.articles.items()
            if key in records and _identity(records[key]) != _identity(data.record)
        ]
        gone = [key for key in self.articles if key not in records or key in stale]
        new = [key for key in records if key not in self.articles or key in stale]
        dropped = sum(len(self.articles[key].paragraphs) for key in gone)
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
                    with contextlib.suppress(IndexCorruptError):  # a sample: each file is checked as it is loaded
                        everything[key] = self.library.map_vectors(records[key], self.dimension)[0]
                self.vectors = VectorIndex.build(self.dimension, everything, exact_limit=limit, add=False)
                for key, held in self.articles.items():
                    self.vectors.add(key, held.vectors)
            loaded = {}
            for key in sorted(new):
                data = self._load_one(records[key])
                if data is None:
                    continue
                self.vectors.add(key, data.vectors)
                if self.library.directory is not None:
                    # faiss has its own copy now: keep the vectors mapped from their file (just checked, not hashed
                    # again) rather than in memory.
                    with contextlib.suppress(IndexCorruptError):
                        data.vectors, identity = self.library.map_vectors(data.record, self.dimension)
                        if identity is not None:
                            self._identities[key] = identity
                loaded[key] = data
            self.articles.update(loaded)
            self._place(list(loaded.values()))
        if gone and self.alive.size and self.alive.sum() < 0.5 * self.alive.size:
            self._rebuild_numbers()
        self.generation = generation
        self._unpersisted += sum(records[k].paragraphs for k in new) + dropped
        self._persist()
        return bool(gone or new)

    # --- the persisted index (index.search.persisted) --------------------------------------------------------

    def _settings(self) -> dict[str, int]:
        """What else the persisted arrays were derived with: another value means they are rebuilt."""
        return {
            "dimension": self.dimension,
            "window": self.library.config.window,
            "exact_limit": self.vectors.exact_limit,
        }

    def _restore(self, records: dict[int, ArticleRecord]) -> None:
        """Take the persisted index when it was made with these settings, then drop what the catalog changed since.

        Each restored article's catalog identity (vector checksum, background) and vector-file identity (size,
        mtime, inode) must match; the others are dropped and read again from their files by :meth:`refresh`. A
        damaged index is logged (one warning) and rebuilt by :meth:`refresh` (and written again in its place).
        """
        assert self.library.directory is not None
        folder = self.library.directory / persisted.FOLDER
        if folder.exists() and not folder.is_dir():
            self._cannot_persist = True
            log.warning(
                "%s is not a directory (citebot keeps the library's search index there), so every process builds the "
                "index anew; move it away",
                folder,
            )
            return
        values = list(records.values())
        most = persisted.capacity(
            len(values),
            sum(r.paragraphs for r in values),
            sum(r.sentences for r in values),
            sum(r.chars for r in values),
            self.dimension,
        )
        for attempt in range(3):
            before = _stat(folder / persisted.STATE)
            try:
                found = persisted.read(folder, most)
                if found is None:
                    return
                if any(found.stamp.get(k) != v for k, v in self._settings().items()):
                    log.info("the search index in %s was made with other settings; rebuilding it", folder)
                    return
                self._apply(found, records)
                self._persisted = True
                return
            except persisted.OtherFormatError as exc:
                self._reset()
                log.info("the search index in %s was %s; rebuilding it", folder, exc)
                return
            except (IndexCorruptError, KeyError, ValueError, IndexError, TypeError, UnicodeDecodeError) as exc:
                self._reset()
                if attempt < 2 and _stat(folder / persisted.STATE) != before:
                    continue  # another process replaced it while we read: read the new one
                log.warning("the search index in %s is damaged (%s); rebuilding it from the library", folder, exc)
                return

    def _apply(self, found: persisted.Persisted, records: dict[int, ArticleRecord]) -> None:
        """Make this index the persisted one ``found``, then drop the articles not current in ``records``."""
        a = found.arrays
        keys = a["keys"].tolist()
        vectors = found.load_vectors(
            dict(zip(keys, a["sizes"].tolist(), strict=True)),
            exact_limit=self.vectors.exact_limit,
            nprobe=self.vectors.nprobe,
        )
        if not (len(keys) == len(a["sha256"]) == len(a["background"]) == len(a["identity"])):
            raise ValueError("its article lists differ in length")
        parts: dict[str, list[np.ndarray]] = {}
        for name in ARRAYS:
            if name in PAIRS:
                terms, counts = (persisted.unpack(a[f"{name}.{x}"], a[f"{name}.{x}@"]) for x in ("terms", "counts"))
                parts[name] = list(zip(terms, counts, strict=True))  # type: ignore[arg-type]
            else:
                parts[name] = persisted.unpack(a[name], a[f"{name}@"])
            if len(parts[name]) != len(keys):
                raise ValueError(f"{name} holds {len(parts[name])} articles, not {len(keys)}")
        texts = a["text"].tobytes().decode()  # one decoding, sliced by character offsets
        text_at = a["text@"].tolist()
        paragraphs = persisted.unpack(a["paragraphs"], a["paragraphs@"])
        pages = persisted.unpack(a["pages"], a["pages@"])
        has_pages = a["has_pages"].tolist()
        window = self.library.config.window
        articles: dict[int, ArticleData] = {}
        stale: list[int] = []
        checksums, backgrounds = a["sha256"].tolist(), a["background"].tolist()
        identities = [tuple(x) for x in a["identity"].tolist()]
        for i, key in enumerate(keys):
            record = records.get(key)
            mapped = None
            if (
                record is not None
                and _identity(record) == (checksums[i], *backgrounds[i])
                and (record.sentences, record.paragraphs) == (len(parts["sentences"][i]), len(paragraphs[i]))
            ):
                with contextlib.suppress(IndexCorruptError):
                    mapped, _ = self.library.map_vectors(record, self.dimension, identities[i])
                    self._identities[key] = identities[i]
            if mapped is None:
                stale.append(key)
                # Kept until dropped below: its paragraphs and counts are in the persisted totals.
                record = _placeholder(key, len(paragraphs[i]), len(parts["sentences"][i]))
                mapped = np.zeros((0, self.dimension), dtype=np.float32)
            assert record is not None  # known and whole, or the placeholder just made
            articles[key] = ArticleData.restored(
                record,
                texts[text_at[i] : text_at[i + 1]],
                tuple(map(tuple, paragraphs[i].tolist())),
                tuple(pages[i].tolist()) if has_pages[i] else None,
                mapped,
                window,
                {name: parts[name][i] for name in ARRAYS},
            )
        stamp = found.stamp
        self.articles = articles
        self.vectors = vectors
        self.base = dict(zip(keys, a["base"].tolist(), strict=True))
        self._next_base = int(stamp["next_base"])
        self.paragraph_key = a["paragraph_key"]
        self.paragraph_local = a["paragraph_local"]
        self.paragraph_length = a["library_paragraph_length"]
        self.alive = a["alive"]
        self._paragraph_df = a["library_paragraph_df"]
        self._sentence_df = a["library_sentence_df"]
        self._totals = a["totals"]
        self.postings = Postings.from_arrays(a["postings.spans"], a["postings.docs"], a["postings.counts"])
        if not (len(self.paragraph_key) == len(self.paragraph_local) == len(self.alive) == self._next_base):
            raise ValueError("its paragraph arrays differ in length")
        self._load_vocabulary()
        self.made["restored"] = len(keys) - len(stale)
        for key in stale:
            self._unpersisted += len(self.articles[key].paragraphs)
            self._drop(key)
        self._identities = {k: v for k, v in self._identities.items() if k in self.articles}
        log.debug("opened the search index of %s articles (%s to read again)", len(keys), len(stale))

    def _reset(self) -> None:
        """Forget everything loaded (a persisted index found damaged halfway)."""
        fresh = LibraryIndex(self.library, self.embedder)
        made = self.made
        self.__dict__.update(fresh.__dict__)
        self.made = made

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return the stamp and the arrays that persist this index (see :mod:`index.search.persisted`)."""
        keys = sorted(self.articles)
        datas = [self.articles[k] for k in keys]
        arrays: dict[str, np.ndarray] = {
            "keys": np.array(keys, dtype=np.int64),
            "sha256": np.array([d.record.vectors_sha256 for d in datas], dtype="U64"),
            "background": np.array([(d.record.background_mean, d.record.background_std) for d in datas]),
            "identity": np.array([self._identities.get(k, (-1, -1, -1)) for k in keys], dtype=np.int64),
            "sizes": np.array([self.vectors.sizes.get(k, 0) for k in keys], dtype=np.int64),
            "base": np.array([self.base[k] for k in keys], dtype=np.int64),
        }
        for name in ARRAYS:
            if name in PAIRS:
                for x, at in (("terms", 0), ("counts", 1)):
                    arrays[f"{name}.{x}"], arrays[f"{name}.{x}@"] = persisted.pack(
                        [getattr(d, name)[at] for d in datas]
                    )
            else:
                arrays[name], arrays[f"{name}@"] = persisted.pack([getattr(d, name) for d in datas])
        arrays["text"] = np.frombuffer("".join(d.text for d in datas).encode(), dtype=np.uint8)
        arrays["text@"] = persisted.pack([np.zeros(len(d.text), dtype=np.uint8) for d in datas])[1]  # in characters
        arrays["paragraphs"], arrays["paragraphs@"] = persisted.pack(
            [np.array(d.paragraphs, dtype=np.int64).reshape(-1, 2) for d in datas]
        )
        arrays["pages"], arrays["pages@"] = persisted.pack([np.array(d.pages or (), dtype=np.int64) for d in datas])
        arrays["has_pages"] = np.array([d.pages is not None for d in datas], dtype=bool)
        arrays["paragraph_key"] = self.paragraph_key
        arrays["paragraph_local"] = self.paragraph_local
        arrays["library_paragraph_length"] = self.paragraph_length
        arrays["alive"] = self.alive
        arrays["library_paragraph_df"] = self._paragraph_df
        arrays["library_sentence_df"] = self._sentence_df
        arrays["totals"] = self._totals
        for name, array in self.postings.arrays().items():
            arrays[f"postings.{name}"] = array
        stamp = {**self._settings(), "generation": self.generation, "next_base": self._next_base}
        return stamp, arrays

    def _persist(self) -> None:
        """Write the persisted index when there is none or this process read a large share of the library since."""
        if self.library.directory is None or self._cannot_persist or not self.articles:
            return
        if self._persisted and self._unpersisted <= min(PERSIST_SHARE * len(self.alive), PERSIST_MOST):
            return
        folder = self.library.directory / persisted.FOLDER
        try:
            written = persisted.write(folder, self._state, self.vectors)
        except OSError as exc:
            self._cannot_persist = True
            log.info("cannot keep the search index in %s (%s); every process will build it", folder, exc)
            return
        if written:
            self._persisted, self._unpersisted = True, 0
            self.made["persisted"] += 1

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
        return [key for key, record in self.records.items() if record.id in wanted]

    def stats(self, query: np.ndarray, keys: Collection[int] | None) -> CollectionStats:
        """Return the collection statistics of the query term ids over ``keys`` (``None``: all articles)."""
        if keys is None and self.lean:
            p_df, s_df, totals = self.library.catalog.term_counts(query)
            return CollectionStats.of(p_df, s_df, totals)
        if keys is None:
            known = (query >= 0) & (query < len(self._paragraph_df))
            at = np.where(known, query, 0)
            return CollectionStats.of(
                np.where(known, self._paragraph_df[at] if len(self._paragraph_df) else 0, 0.0),
                np.where(known, self._sentence_df[at] if len(self._sentence_df) else 0, 0.0),
                (int(self._totals[0]), int(self._totals[1]), float(self._totals[2]), float(self._totals[3])),
            )
        p_df = np.zeros(len(query))
        s_df = np.zeros(len(query))
        paragraphs = sentences = 0
        p_len = s_len = 0.0
        for data in (self.articles[k] for k in keys):
            p_df += _lookup(*data.paragraph_df, query)
            s_df += _lookup(*data.sentence_df, query)
            paragraphs += len(data.paragraphs)
            sentences += len(data.sentences)
            p_len += float(data.paragraph_length.sum())
            s_len += float(data.sentence_length.sum())
        return CollectionStats.of(p_df, s_df, (paragraphs, sentences, p_len, s_len))

    @property
    def paragraphs(self) -> int:
        """How many paragraphs the library holds."""
        return sum(r.paragraphs for r in self.records.values())
