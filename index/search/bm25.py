"""BM25 (the Lucene variant bm25s uses) over term ids: weights, counts, and incremental postings."""

from __future__ import annotations

import numpy as np

#: BM25's parameters, as bm25s uses them by default.
K1 = 1.2
B = 0.75


def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Return BM25's (Lucene) inverse document frequency of terms found in ``df`` of ``n_docs`` documents."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def bm25_tf(tf: np.ndarray, length: np.ndarray, average: float, k1: float = K1, b: float = B) -> np.ndarray:
    """Return BM25's term-frequency part for counts ``tf`` in documents of ``length`` tokens."""
    tf = np.asarray(tf, dtype=np.float64)
    return tf / (k1 * ((1 - b) + b * np.asarray(length, dtype=np.float64) / max(average, 1e-9)) + tf)


def term_counts(tokens: np.ndarray, offsets: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Return a ``(documents, len(query))`` matrix: how often each query term id occurs in each document.

    The documents are ``tokens[offsets[i]:offsets[i + 1]]``.
    """
    documents = len(offsets) - 1
    out = np.zeros((max(documents, 0), len(query)), dtype=np.float64)
    if not len(tokens) or not len(query) or documents <= 0:
        return out
    owner = np.repeat(np.arange(documents), np.diff(offsets))
    hits = tokens[:, None] == query[None, :]
    rows, columns = np.nonzero(hits)
    np.add.at(out, (owner[rows], columns), 1.0)
    return out


class Postings:
    """An inverted index of term ids over numbered documents, grown by segments, for BM25 scoring.

    Each segment holds, per term, the documents containing it and how often.
    Adding documents adds a small segment; :meth:`compact` merges them.
    Removed documents are left in place and masked by the caller.
    """

    def __init__(self) -> None:
        self._segments: list[tuple[dict[int, tuple[int, int]], np.ndarray, np.ndarray]] = []

    @staticmethod
    def _segment(docs: np.ndarray, terms: np.ndarray) -> tuple[dict[int, tuple[int, int]], np.ndarray, np.ndarray]:
        if not len(terms):
            return {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        pairs = terms.astype(np.int64) << 32 | docs.astype(np.int64)
        unique, counts = np.unique(pairs, return_counts=True)
        term_of = unique >> 32
        doc_of = unique & 0xFFFFFFFF
        cuts = np.flatnonzero(np.diff(term_of)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(unique)]])
        lookup = {int(term_of[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
        return lookup, doc_of, counts.astype(np.float32)

    def add(self, docs: np.ndarray, terms: np.ndarray) -> None:
        """Add one occurrence of ``terms[i]`` in document ``docs[i]`` for every ``i``."""
        self._segments.append(self._segment(np.asarray(docs), np.asarray(terms)))
        if len(self._segments) > 16:
            self.compact()

    def compact(self) -> None:
        """Merge every segment into one (same postings, fewer lookups per query)."""
        docs, terms, counts = [], [], []
        for lookup, doc_of, count in self._segments:
            for term, (a, b) in lookup.items():
                docs.append(doc_of[a:b])
                terms.append(np.full(b - a, term, dtype=np.int64))
                counts.append(count[a:b])
        if not docs:
            self._segments = []
            return
        all_docs, all_terms, all_counts = np.concatenate(docs), np.concatenate(terms), np.concatenate(counts)
        order = np.lexsort((all_docs, all_terms))
        all_docs, all_terms, all_counts = all_docs[order], all_terms[order], all_counts[order]
        cuts = np.flatnonzero(np.diff(all_terms)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(all_terms)]])
        lookup = {int(all_terms[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
        self._segments = [(lookup, all_docs, all_counts)]

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the postings as flat arrays (merged first), for :meth:`from_arrays` in another process."""
        self.compact()
        lookup, docs, counts = self._segments[0] if self._segments else ({}, np.zeros(0, np.int64), np.zeros(0))
        spans = np.array(sorted((term, a, b) for term, (a, b) in lookup.items()), dtype=np.int64).reshape(-1, 3)
        return {"spans": spans, "docs": docs.astype(np.int64), "counts": counts.astype(np.float32)}

    @classmethod
    def from_arrays(cls, spans: np.ndarray, docs: np.ndarray, counts: np.ndarray) -> Postings:
        """Return the postings that :meth:`arrays` flattened."""
        postings = cls()
        if len(spans):
            lookup = dict(
                zip(spans[:, 0].tolist(), zip(spans[:, 1].tolist(), spans[:, 2].tolist(), strict=True), strict=True)
            )
            postings._segments = [(lookup, docs, counts)]
        return postings

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the documents holding ``term`` and how often it occurs in each."""
        docs, counts = [], []
        for lookup, doc_of, count in self._segments:
            span = lookup.get(term)
            if span is not None:
                docs.append(doc_of[span[0] : span[1]])
                counts.append(count[span[0] : span[1]])
        if not docs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(docs), np.concatenate(counts)

    def bm25(self, query: np.ndarray, idf: np.ndarray, lengths: np.ndarray, average: float) -> np.ndarray:
        """Return every document's BM25 score for the query term ids (repeats count again, as in bm25s).

        ``idf`` holds one weight per query term; ``lengths`` one length per document.
        """
        scores = np.zeros(len(lengths), dtype=np.float64)
        for term, weight in zip(query.tolist(), idf.tolist(), strict=True):
            if weight <= 0:
                continue
            docs, tf = self.postings(term)
            if len(docs):
                scores[docs] += weight * bm25_tf(tf, lengths[docs], average)
        return scores
