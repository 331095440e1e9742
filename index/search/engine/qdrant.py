"""The Qdrant engine: the first stage on Qdrant, which does the sharding, the replicas and the ANN.

One collection (an Edge shard) holds two kinds of point, told apart by the payload's ``kind``:

- a sentence (``"s"``): its vector (named ``dense``), id :func:`~index.store.vectors.vector_id`;
- a paragraph (``"p"``): no vector, its terms (as the catalog stems them, joined by spaces) in a text index
  with BM25 scoring, id :data:`PARAGRAPH_BIT` ``|`` ``vector_id(key, paragraph)``.

Both carry the stored version's ``key`` (what a scope filters on) and its ``version`` (the key and the vector
file's checksum), so :meth:`QdrantEngine.sync` sees from a facet over ``version`` which articles the engine holds
and brings it to the catalog: what the catalog no longer has is deleted, what it has that is missing (never written,
or cut short by a crash) is written again. Within a scope, BM25's statistics are the scope's
(``SearchParams(idf=IdfParams(corpus=...))``), as the local engine computes them.

Two transports carry the requests (:class:`Transport`): :class:`~index.search.engine.edge.EdgeTransport`, Qdrant
Edge (Qdrant's shard code in-process: one process's, for one machine and the tests), and
:class:`~index.search.engine.client.ClientTransport`, ``qdrant-client`` talking to a Qdrant server or cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.search.engine.base import ArticleLoader, EngineArticle, EngineError, LexicalQuery, TermNames
from index.store.vectors import split_id, vector_id

if TYPE_CHECKING:
    from index.store.catalog import ArticleRecord

log = logging.getLogger(__name__)

#: Set in the id of a paragraph point (sentence points are plain vector ids, far below it).
PARAGRAPH_BIT = 1 << 62
#: Points written per update.
BATCH = 1000
#: HNSW's graph: edges per node and build breadth (Qdrant's defaults are 16 and 100), and its search breadth (at
#: least the k asked: the first stage asks for 200 sentences). Chosen by ``benchmarks/qdrant_scale.py`` at 100k
#: vectors: the defaults with a breadth of 256 found 0.585 of the exact top 200 (0.941 at 1024); these 0.992, in
#: 8.6 ms against 6.0, for a graph 4.7 times slower to build.
HNSW_M = 32
HNSW_EF_CONSTRUCT = 256
HNSW_EF = 1024
#: The most stored versions a facet lists (the engine's articles; a million-article archive fits).
MOST_VERSIONS = 10_000_000
#: The payload fields and what each is indexed as: ``text`` is BM25-scored, whitespace-split, not lowercased.
FIELDS = (("kind", "keyword"), ("key", "integer"), ("version", "keyword"), ("terms", "text"))


def version(key: int, vectors_sha256: str) -> str:
    """Return what identifies a stored version in the engine: its key and its vector file's checksum."""
    return f"{key}-{vectors_sha256[:16]}"


def version_of(data: EngineArticle) -> str:
    """Return :func:`version` of ``data``'s stored version."""
    return version(data.key, data.record.vectors_sha256)


#: A point: its id, its dense vector (``None`` for a paragraph) and its payload.
EnginePoint = tuple[int, "list[float] | None", dict[str, object]]


class Transport(Protocol):
    """How requests reach Qdrant: each method raises :class:`EngineError` (one line, no secret) when it fails."""

    #: Where the engine is, for messages (a folder, or a URL without credentials).
    where: str

    def versions(self) -> list[str]:
        """Return the ``version`` values the points carry (a facet)."""
        ...

    def delete(self, field: str, values: list[str]) -> None:
        """Delete the points whose ``field`` is one of ``values``."""
        ...

    def upsert(self, points: list[EnginePoint]) -> None:
        """Write ``points`` (the same ids replace what was there)."""
        ...

    def nearest(self, vector: list[float], k: int, keys: list[int] | None) -> list[int]:
        """Return the ids of the ``k`` sentence points nearest to ``vector`` among ``keys``, best first."""
        ...

    def bm25(self, text: str, k: int, keys: list[int] | None) -> list[tuple[int, float]]:
        """Return ``(id, score)`` of the ``k`` paragraph points BM25 scores highest for ``text``, the IDF over the
        paragraphs of ``keys`` (``None``: all), best first."""
        ...

    def settle(self) -> None:
        """Make what was written searchable and durable (Edge: optimise and flush; a server does it itself)."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


class QdrantEngine:
    """The first stage on Qdrant, through ``transport`` (see the module docstring)."""

    name = "qdrant"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.where = transport.where
        self._versions: dict[str, int] | None = None  # version -> key, as the engine holds them

    def versions(self) -> dict[str, int]:
        """Return the stored versions the engine holds (each with its key), read once from a facet."""
        if self._versions is None:
            self._versions = {v: int(v.split("-", 1)[0]) for v in self.transport.versions()}
        return self._versions

    def clear(self) -> None:
        """Delete every point (:meth:`sync` writes the library again)."""
        try:
            self.transport.delete("kind", ["s", "p"])
            self.transport.settle()
        finally:
            self._versions = None

    def sync(self, records: Mapping[int, ArticleRecord], load: ArticleLoader, terms: TermNames) -> int:
        """Make the engine hold exactly the versions ``records``: delete the versions the catalog no longer has,
        write those missing (each read by ``load`` then); return how many articles changed."""
        held = self.versions()
        wanted = {version(key, record.vectors_sha256): key for key, record in records.items()}
        gone = [v for v in held if v not in wanted]
        new = [(v, key) for v, key in wanted.items() if v not in held]
        written = 0
        try:
            if gone:
                self.transport.delete("version", gone)
                for v in gone:
                    held.pop(v, None)
            for v, key in new:
                data = load(key)
                if data is None:
                    continue  # removed meanwhile: the next sync sees the catalog without it
                names = terms(np.unique(data.tokens).tolist())
                # A version cut short by a crash may be partly there: its points are written again (same ids).
                for batch in _batches(_points(data, names), BATCH):
                    self.transport.upsert(batch)
                held[v] = key
                written += 1
            if gone or new:
                self.transport.settle()
        except EngineError:
            self._versions = None  # read again next time: what was written is what the engine says
            raise
        if gone or written:
            log.info("qdrant: %d articles written, %d removed", written, len(gone))
        return len(gone) + written

    def dense(self, query: np.ndarray, k: int, keys: Collection[int] | None) -> np.ndarray:
        """Return the vector ids of the ``k`` sentences nearest to ``query`` among ``keys``, best first."""
        if k < 1 or (keys is not None and not keys):
            return np.zeros(0, dtype=np.int64)
        scope = None if keys is None else [int(key) for key in keys]
        ids = self.transport.nearest(query.astype(np.float32).tolist(), k, scope)
        return np.array(ids, dtype=np.int64)

    def lexical(self, query: LexicalQuery, k: int, keys: Collection[int] | None) -> list[tuple[int, int]]:
        """Return ``(key, paragraph)`` of the ``k`` paragraphs of ``keys`` BM25 scores highest, best first."""
        if k < 1 or not query.terms or (keys is not None and not keys):
            return []
        scope = None if keys is None else [int(key) for key in keys]
        hits = [i for i, score in self.transport.bm25(" ".join(query.terms), k, scope) if score > 0]
        keys_, paragraphs = split_id(np.array([i & ~PARAGRAPH_BIT for i in hits], dtype=np.int64))
        return list(zip(keys_.tolist(), paragraphs.tolist(), strict=True))

    def close(self) -> None:
        """Release the transport (an Edge shard may then be opened by another process)."""
        self.transport.close()


def _points(data: EngineArticle, term_of: Mapping[int, str]) -> Iterator[EnginePoint]:
    """Return ``data``'s points: one per sentence (its vector), one per paragraph (its terms)."""
    version = version_of(data)
    for s, vector in enumerate(data.vectors):
        yield (
            vector_id(data.key, s),
            vector.astype(np.float32).tolist(),
            {"kind": "s", "key": data.key, "version": version},
        )
    for p in range(len(data.paragraphs)):
        tokens = data.tokens[data.paragraph_tokens[p] : data.paragraph_tokens[p + 1]]
        terms = " ".join(term_of[t] for t in tokens.tolist())
        payload: dict[str, object] = {"kind": "p", "key": data.key, "version": version, "terms": terms}
        yield PARAGRAPH_BIT | vector_id(data.key, p), None, payload


def _batches(items: Iterator[EnginePoint], size: int) -> Iterator[list[EnginePoint]]:
    batch: list[EnginePoint] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
