"""Retrieve: rank an article's paragraphs for a question and find the answering sentence.

The raw evidence (:class:`Evidence`) is of two kinds:

* dense: the cosine between the question and each chunk (sentence window) and
  each sentence, from the faiss index;
* lexical: BM25 over stemmed words (bm25s), of paragraphs and of sentences.

:mod:`index.ranker` turns it into a handful of features per paragraph and per
sentence (the cosines, BM25 shares, the share of the question's IDF mass and
word pairs found, the neighbouring sentences) and weighs them with linear
models fitted on SQuAD (``index/data/ranker.json``, fitted by
``benchmarks/tune.py`` with article-wise cross-validation). The same features
give the probability that the article answers the question at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.embed import Embedder
from index.lexical import BM25Index, tokenize
from index.ranker import ArticleStats, Ranker, decision_features, default_ranker, features
from index.store import ArticleIndex


@dataclass(frozen=True)
class ScoredParagraph:
    """One paragraph's evidence for a question.

    Attributes:
        paragraph: 0-based paragraph number.
        score: the ranker's share of belief that it is the answering paragraph (0 to 1; the
            article's paragraphs add up to 1).
        dense: cosine of its best chunk or sentence with the question.
        lexical: its BM25 score divided by the best paragraph's (0 to 1).
        sentences: indices of its sentences (into ``ArticleIndex.sentences``), best first.
        sentence_scores: their ranker scores (linear, unbounded), in the same order.
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
        answerability: the probability that the article answers the question.
    """

    paragraphs: tuple[ScoredParagraph, ...]
    best_sentence_cosine: float
    term_coverage: float
    answerability: float = 0.0


def _cosines(index: object, query: np.ndarray) -> np.ndarray:
    """Return the cosine of ``query`` with every vector of a faiss index, in stored order."""
    total = index.ntotal  # type: ignore[attr-defined]
    out = np.full(total, -1.0, dtype=np.float32)
    if total:
        scores, ids = index.search(query.reshape(1, -1), total)  # type: ignore[attr-defined]
        out[ids[0]] = scores[0]
    return out


@dataclass(frozen=True)
class Evidence:
    """The raw scores of one question against every part of the article, before any fusion.

    Attributes:
        terms: the question's stemmed content words.
        chunk_cosine: cosine of the question with each chunk.
        sentence_cosine: cosine with each sentence.
        paragraph_dense: per paragraph, the best cosine of its chunks and sentences.
        paragraph_bm25: per paragraph, its BM25 score.
        sentence_bm25: per sentence, its BM25 score (sentences as the documents).
    """

    terms: list[str]
    chunk_cosine: np.ndarray
    sentence_cosine: np.ndarray
    paragraph_dense: np.ndarray
    paragraph_bm25: np.ndarray
    sentence_bm25: np.ndarray


class Retriever:
    """Hybrid dense + BM25 search over one :class:`ArticleIndex`.

    Args:
        index: the article's index.
        embedder: the model the index was built with (used for questions).
        ranker: the fitted weights; the shipped ones by default.
    """

    def __init__(self, index: ArticleIndex, embedder: Embedder, ranker: Ranker | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self._ranker = ranker
        article = index.article
        n = len(article.paragraphs)
        sentence_texts = [article.text[s.start : s.end] for s in index.sentences]
        self._paragraph_bm25 = BM25Index([article.paragraph(i) for i in range(n)])
        self._sentence_bm25 = BM25Index(sentence_texts)
        self._chunk_paragraph = np.array([c.paragraph for c in index.chunks], dtype=np.int64)
        self._sentence_paragraph = np.array([s.paragraph for s in index.sentences], dtype=np.int64)
        self._query_cache: dict[str, np.ndarray] = {}
        self.stats = ArticleStats(
            self._paragraph_bm25.tokens,
            self._sentence_bm25.tokens,
            sentence_texts,
            self._sentence_paragraph,
            [(c.first, c.last) for c in index.chunks],
        )

    @property
    def ranker(self) -> Ranker:
        """The fitted weights (the shipped ones unless others were given), loaded on first use."""
        if self._ranker is None:
            self._ranker = default_ranker()
        return self._ranker

    @property
    def sentence_paragraph(self) -> np.ndarray:
        """The 0-based paragraph of every sentence, in sentence order."""
        return self._sentence_paragraph

    def _encode(self, question: str) -> np.ndarray:
        """Return the question's vector; the last few are kept, so asking again (``more``) costs nothing."""
        vector = self._query_cache.get(question)
        if vector is None:
            if len(self._query_cache) >= 64:
                self._query_cache.pop(next(iter(self._query_cache)))
            vector = self._query_cache[question] = self.embedder.encode_query(question)
        return vector

    def evidence(self, question: str) -> Evidence:
        """Return the raw dense and BM25 scores of ``question`` against every chunk, sentence and paragraph."""
        n = len(self.index.article.paragraphs)
        query = self._encode(question)
        terms = tokenize(question)
        chunk_cos = _cosines(self.index.chunk_vectors, query)
        sentence_cos = _cosines(self.index.sentence_vectors, query)
        dense = np.full(n, -1.0, dtype=np.float32)
        np.maximum.at(dense, self._chunk_paragraph, chunk_cos)
        np.maximum.at(dense, self._sentence_paragraph, sentence_cos)
        return Evidence(
            terms=terms,
            chunk_cosine=chunk_cos,
            sentence_cosine=sentence_cos,
            paragraph_dense=dense,
            paragraph_bm25=self._paragraph_bm25.scores(terms),
            sentence_bm25=self._sentence_bm25.scores(terms),
        )

    def rank(self, question: str) -> Ranking:
        """Score every paragraph for ``question`` and order them, best first."""
        ev = self.evidence(question)
        f = features(ev, self.stats, question)
        logits = self.ranker.paragraph(f.paragraphs)
        share = np.exp(logits - logits.max(initial=0.0))
        share /= share.sum() or 1.0
        s_score = self.ranker.sentence(f.sentences)
        bm25 = ev.paragraph_bm25
        lexical = bm25 / bm25.max() if bm25.max() > 0 else bm25
        order = np.argsort(-logits, kind="stable")
        s_order = np.lexsort((-s_score, self._sentence_paragraph))  # by paragraph, best sentence first
        bounds = np.searchsorted(self._sentence_paragraph[s_order], np.arange(len(logits) + 1))
        scored = []
        for p in order:
            members = s_order[bounds[p] : bounds[p + 1]]
            scored.append(
                ScoredParagraph(
                    paragraph=int(p),
                    score=float(share[p]),
                    dense=float(ev.paragraph_dense[p]),
                    lexical=float(lexical[p]),
                    sentences=tuple(int(i) for i in members),
                    sentence_scores=tuple(float(s_score[i]) for i in members),
                )
            )
        top = scored[0] if scored else None
        answerable = 0.0
        if top is not None:
            best = top.sentences[0] if top.sentences else None
            answerable = self.ranker.probability(decision_features(f, top.paragraph, best, self.index.background))
        return Ranking(tuple(scored), f.best_cosine, f.coverage, answerable)
