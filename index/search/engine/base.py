"""What a first-stage engine does: hold every sentence vector and paragraph of the library, and name the candidates.

The first stage of :class:`index.search.retrieve.Searcher` asks an engine for the sentences nearest to a question
(dense) and the paragraphs BM25 scores highest (lexical), both within a scope of articles; the second stage reads
those candidates only. The catalog stays the truth: an engine is derived data, brought to agree with the library's
articles by :meth:`CandidateEngine.sync`, which also repairs what a crash between the catalog and the engine left.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.errors import CitebotError

if TYPE_CHECKING:
    from index.store.catalog import ArticleRecord


class EngineError(CitebotError):
    """The search engine cannot be used: not reachable, refusing the key, or open in another process. The message
    is one line and names no secret."""


class EngineArticle(Protocol):
    """What an engine reads of one stored article version (an :class:`index.search.library_index.ArticleData`)."""

    record: ArticleRecord
    paragraphs: tuple[tuple[int, int], ...]
    tokens: np.ndarray  # term ids of all sentences, concatenated
    vectors: np.ndarray  # (sentences, dimension), unit length
    paragraph_tokens: np.ndarray  # paragraph p's terms are tokens[paragraph_tokens[p]:paragraph_tokens[p + 1]]

    @property
    def key(self) -> int:
        """The stored version's key."""
        ...


#: Reads the article of a key for an engine to write (``None``: it was removed meanwhile).
ArticleLoader = Callable[[int], "EngineArticle | None"]
#: Returns the terms of term ids (those the vocabulary holds).
TermNames = Callable[[Iterable[int]], Mapping[int, str]]


@dataclass(frozen=True)
class LexicalQuery:
    """A question's words, as both engines' BM25 reads them.

    Each distinct term counts once (as Qdrant's text index counts a query), whatever the question repeats.

    Attributes:
        terms: the distinct terms the library knows, in question order.
        ids: their term ids (as the catalog's vocabulary numbers them).
        weights: their IDF over the collection searched (the local engine's BM25 weights).
        average: the collection's mean paragraph length in terms.
    """

    terms: tuple[str, ...]
    ids: np.ndarray
    weights: np.ndarray
    average: float


class CandidateEngine(Protocol):
    """Where the first stage searches (see the module docstring)."""

    #: One of :data:`index.config.SEARCH_ENGINES`.
    name: str
    #: Where the engine is, for messages (a folder, or a URL without credentials).
    where: str

    def sync(self, records: Mapping[int, ArticleRecord], load: ArticleLoader, terms: TermNames) -> int:
        """Make the engine hold exactly the stored versions ``records`` (by key); return how many articles were
        added or removed.

        ``load(key)`` reads an article to write (``None``: removed meanwhile); ``terms(ids)`` names term ids (the
        catalog's vocabulary).
        """
        ...

    def clear(self) -> None:
        """Forget everything the engine holds, so that the next :meth:`sync` writes the library anew (the local
        engine holds nothing of its own: nothing to do)."""
        ...

    def dense(self, query: np.ndarray, k: int, keys: Collection[int] | None) -> np.ndarray:
        """Return the vector ids (:func:`index.store.vectors.vector_id`) of the ``k`` sentences nearest to
        ``query``, best first, among the articles ``keys`` (``None``: all)."""
        ...

    def lexical(self, query: LexicalQuery, k: int, keys: Collection[int] | None) -> list[tuple[int, int]]:
        """Return ``(key, paragraph)`` of the ``k`` paragraphs BM25 scores highest for ``query`` (a score above 0),
        best first, among the articles ``keys`` (``None``: all)."""
        ...

    def close(self) -> None:
        """Release the engine (files, connections)."""
        ...
