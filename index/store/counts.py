"""Term counts: how many paragraphs and sentences hold each term, and the collection's lengths in terms.

BM25 and the ranker's IDF read these over the library. The catalog keeps them for the whole library in its
``term_counts`` table and ``counts`` meta row (:class:`index.store.catalog.Catalog`), changed in the transaction that
adds or removes an article, so that a process need not hold the library to know them (the Qdrant engine's readers);
:class:`index.search.library_index.ArticleData` counts one article with the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def document_frequency(tokens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct term ids of the documents ``tokens[offsets[i]:offsets[i+1]]`` and how many of the
    documents hold each."""
    if not len(tokens):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    pairs = np.unique(tokens.astype(np.int64) << 32 | owner)
    terms, counts = np.unique(pairs >> 32, return_counts=True)
    return terms, counts


def paragraph_offsets(sentences: np.ndarray, paragraphs: int, token_offsets: np.ndarray) -> np.ndarray:
    """Return where each paragraph's terms start in the article's tokens (``paragraphs + 1`` offsets), from the
    sentences' ``(paragraph, start, end)`` rows."""
    owner = sentences[:, 0].astype(np.int64) if len(sentences) else np.zeros(0, dtype=np.int64)
    return np.asarray(token_offsets)[np.searchsorted(owner, np.arange(paragraphs + 1))]


@dataclass(frozen=True)
class ArticleCounts:
    """One article's term counts: its distinct terms, in how many of its paragraphs and sentences each is, and
    ``totals``: paragraphs, sentences, and their summed lengths in terms (each at least 1, as BM25 reads them)."""

    terms: np.ndarray
    paragraphs: np.ndarray
    sentences: np.ndarray
    totals: tuple[int, int, float, float]

    @classmethod
    def of(cls, tokens: np.ndarray, token_offsets: np.ndarray, sentences: np.ndarray, paragraphs: int) -> ArticleCounts:
        """Count the article whose sentences' terms are ``tokens`` split at ``token_offsets``."""
        p_offsets = paragraph_offsets(sentences, paragraphs, token_offsets)
        p_terms, p_df = document_frequency(tokens, p_offsets)
        s_terms, s_df = document_frequency(tokens, token_offsets)
        # Every term of a paragraph is in one of its sentences and back: the two term lists are the same.
        assert np.array_equal(p_terms, s_terms)
        p_len = float(np.maximum(np.diff(p_offsets), 1).sum())
        s_len = float(np.maximum(np.diff(token_offsets), 1).sum())
        return cls(p_terms, p_df, s_df, (paragraphs, len(token_offsets) - 1, p_len, s_len))
