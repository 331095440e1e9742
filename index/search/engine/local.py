"""The local engine: the library's own faiss index and BM25 postings, held by :class:`LibraryIndex` in memory.

The default, and the fastest path for one machine; it has nothing to sync, since the library index keeps both
up to date itself (and persists them in the data directory's ``search/``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.search.engine.base import ArticleLoader, LexicalQuery, TermNames

if TYPE_CHECKING:
    from index.search.bm25 import Postings
    from index.search.vector_index import VectorIndex
    from index.store.catalog import ArticleRecord


class LocalParts(Protocol):
    """What the local engine searches, as :class:`index.search.library_index.LibraryIndex` keeps it up to date."""

    vectors: VectorIndex
    postings: Postings
    paragraph_key: np.ndarray  # per global paragraph number: its article's key
    paragraph_local: np.ndarray  # its number within the article
    paragraph_length: np.ndarray  # its length in terms
    alive: np.ndarray  # whether its article is still in the library


class LocalEngine:
    """The first stage over ``parts``' faiss index and postings (see the module docstring)."""

    name = "local"
    where = "this process's memory"

    def __init__(self, parts: LocalParts) -> None:
        self._lib = parts

    def sync(self, records: Mapping[int, ArticleRecord], load: ArticleLoader, terms: TermNames) -> int:
        """Do nothing: the library index keeps its faiss index and postings in step itself; return 0."""
        return 0

    def clear(self) -> None:
        """Do nothing: the library index's own structures are rebuilt from the catalog as they are read."""

    def dense(self, query: np.ndarray, k: int, keys: Collection[int] | None) -> np.ndarray:
        """Return the vector ids of the ``k`` sentences nearest to ``query`` among ``keys``, best first."""
        return self._lib.vectors.search(query, k, keys)[1]

    def lexical(self, query: LexicalQuery, k: int, keys: Collection[int] | None) -> list[tuple[int, int]]:
        """Return ``(key, paragraph)`` of the ``k`` paragraphs of ``keys`` BM25 scores highest, best first."""
        lib = self._lib
        if not len(query.ids) or not len(lib.paragraph_length):
            return []
        scores = lib.postings.bm25(query.ids, query.weights, lib.paragraph_length, query.average)
        mask = lib.alive if keys is None else lib.alive & np.isin(lib.paragraph_key, list(keys))
        scores = np.where(mask, scores, 0.0)
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        out = []
        for number in top[np.argsort(-scores[top], kind="stable")]:
            if scores[number] <= 0:
                break
            out.append((int(lib.paragraph_key[number]), int(lib.paragraph_local[number])))
        return out

    def close(self) -> None:
        """Do nothing: the library index owns the memory."""
