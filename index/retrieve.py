"""Retrieve: rank an article's paragraphs for a question and find the answering sentence.

Two kinds of evidence are combined at paragraph level:

* dense: the cosine between the question and the paragraph's best chunk
  (sentence window), from the faiss index;
* lexical: BM25 over stemmed words, from bm25s.

Paragraphs are ranked by score fusion: the cosine plus a weighted share of
the best paragraph's BM25 score (on the bundled article's questions this put
the answering paragraph first 20 times in 20, where reciprocal rank fusion
managed 17; ``benchmarks/seed.py`` measures it). Inside
a paragraph, each sentence is scored by its own cosine plus its share of the
best sentence's BM25 score; the best one is the answering sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.embed import Embedder
from index.lexical import BM25Index, tokenize
from index.store import ArticleIndex

#: How much lexical evidence (BM25 over the best paragraph's) adds to the cosine of a paragraph.
PARAGRAPH_LEXICAL_WEIGHT = 0.3
#: How much lexical evidence counts next to the cosine when picking the sentence.
SENTENCE_LEXICAL_WEIGHT = 0.3


@dataclass(frozen=True)
class ScoredParagraph:
    """One paragraph's evidence for a question.

    Attributes:
        paragraph: 0-based paragraph number.
        score: its fused ranking score (higher is better).
        dense: cosine of its best chunk with the question.
        lexical: its BM25 score divided by the best paragraph's (0 to 1).
        sentences: indices of its sentences (into ``ArticleIndex.sentences``), best first.
        sentence_scores: their scores, in the same order.
    """

    paragraph: int
    score: float
    dense: float
    lexical: float
    sentences: tuple[int, ...]
    sentence_scores: tuple[float, ...]


@dataclass(frozen=True)
class Ranking:
    """All paragraphs of the article ranked for one question, and whole-question evidence.

    Attributes:
        paragraphs: every paragraph, best first.
        best_sentence_cosine: the highest cosine of any sentence or chunk with the question.
        term_coverage: the share of the question's content words found in the article.
    """

    paragraphs: tuple[ScoredParagraph, ...]
    best_sentence_cosine: float
    term_coverage: float


def _cosines(index: object, query: np.ndarray) -> np.ndarray:
    """Return the cosine of ``query`` with every vector of a faiss index, in stored order."""
    total = index.ntotal  # type: ignore[attr-defined]
    out = np.full(total, -1.0, dtype=np.float32)
    if total:
        scores, ids = index.search(query.reshape(1, -1), total)  # type: ignore[attr-defined]
        out[ids[0]] = scores[0]
    return out


class Retriever:
    """Hybrid dense + BM25 search over one :class:`ArticleIndex`.

    Args:
        index: the article's index.
        embedder: the model the index was built with (used for questions).
    """

    def __init__(self, index: ArticleIndex, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder
        article = index.article
        n = len(article.paragraphs)
        self._paragraph_bm25 = BM25Index([article.paragraph(i) for i in range(n)])
        self._sentence_bm25 = BM25Index([article.text[s.start : s.end] for s in index.sentences])
        self._chunk_paragraph = np.array([c.paragraph for c in index.chunks], dtype=np.int64)
        self._sentence_paragraph = np.array([s.paragraph for s in index.sentences], dtype=np.int64)

    def rank(self, question: str) -> Ranking:
        """Score every paragraph for ``question`` and order them, best first."""
        n = len(self.index.article.paragraphs)
        query = self.embedder.encode_query(question)
        terms = tokenize(question)

        chunk_cos = _cosines(self.index.chunk_vectors, query)
        sentence_cos = _cosines(self.index.sentence_vectors, query)
        dense = np.full(n, -1.0, dtype=np.float32)
        np.maximum.at(dense, self._chunk_paragraph, chunk_cos)
        np.maximum.at(dense, self._sentence_paragraph, sentence_cos)

        bm25 = self._paragraph_bm25.scores(terms)
        lexical = bm25 / bm25.max() if bm25.max() > 0 else bm25
        fused = dense + PARAGRAPH_LEXICAL_WEIGHT * lexical

        s_bm25 = self._sentence_bm25.scores(terms)
        s_lex = s_bm25 / s_bm25.max() if s_bm25.max() > 0 else s_bm25
        s_score = sentence_cos + SENTENCE_LEXICAL_WEIGHT * s_lex

        scored = []
        for p in np.argsort(-fused, kind="stable"):
            members = np.flatnonzero(self._sentence_paragraph == p)
            order = members[np.argsort(-s_score[members], kind="stable")]
            scored.append(
                ScoredParagraph(
                    paragraph=int(p),
                    score=float(fused[p]),
                    dense=float(dense[p]),
                    lexical=float(lexical[p]),
                    sentences=tuple(int(i) for i in order),
                    sentence_scores=tuple(float(s_score[i]) for i in order),
                )
            )
        vocabulary = self._paragraph_bm25.vocabulary
        coverage = sum(t in vocabulary for t in terms) / len(terms) if terms else 0.0
        best = float(max(chunk_cos.max(initial=-1.0), sentence_cos.max(initial=-1.0)))
        return Ranking(tuple(scored), best, coverage)
