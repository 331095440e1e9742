"""Library index: the whole library in memory, ready to search, kept up to date with the catalog.

Per-article arrays (:class:`ArticleData`: sentences, their words and vectors, sentence windows), one faiss
index over every sentence vector (:mod:`index.search.vector_index`) and one BM25 postings list
(:mod:`index.search.bm25`). A reader notices a change with one ``stat`` per question
(:meth:`LibraryIndex.refresh`) and loads only what changed. The searcher owns it
(:class:`index.search.retrieve.Searcher`); the library on disk (:mod:`index.store.library`) knows nothing of it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.analysis.background import Background, background_ok
from index.analysis.sentences import sentence_windows
from index.errors import IndexCorruptError, LibraryError
from index.reading.article import Article
from index.search.bm25 import Postings
from index.search.vector_index import VectorIndex
from index.store.catalog import ArticleRecord

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
        """Return the stored text as an :class:`~index.reading.ingest.Article`."""
        r = self.record
        return Article(self.text, self.paragraphs, r.title, r.date, r.source, r.fingerprint)


def _identity(record: ArticleRecord) -> tuple[str, float, float]:
    """What must match for an article's loaded vectors and background to be current."""
    return (record.vectors_sha256, record.background_mean, record.background_std)


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
            log.warning("the index of article %s is damaged (%s); repairing it", record.id, exc)
            repaired = self.library.repair(record, self.embedder)
            if repaired is None:
                return None
            try:
                return self._load(repaired)
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
                for key, held in self.articles.items():
                    self.vectors.add(key, held.vectors)
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
            paragraphs, sentences = int(self._totals[0]), int(self._totals[1])
            p_len, s_len = float(self._totals[2]), float(self._totals[3])
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
