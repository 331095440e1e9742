"""Retrieve: rank the library's paragraphs for a question and find the answering sentence in each.

Two stages. First, candidates: the paragraphs holding the sentences nearest to the question in the
library's faiss index, and the paragraphs BM25 scores highest (a scope of at most
:data:`SCORE_WHOLE` paragraphs, such as one news article, is taken whole). Second, for the candidates
only, the evidence (cosines of every sentence and sentence window, BM25 of paragraphs and sentences,
which question words each sentence holds) becomes the named features of :mod:`index.search.features`, gathered
into a :class:`~index.search.ranking.QuestionEvidence`; the stages of :mod:`index.search.ranking` (shared with the
tuning) weigh them by the fitted models of :mod:`index.search.ranker`, let the answer-sentence model read the best
few sentences, reorder them by its logits and decide the verdict (:mod:`index.search.rerank`). Statistics
(IDF, BM25's document frequencies) are those of the collection searched: the whole library, or the articles
in scope.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from index.analysis.words import tokenize
from index.errors import ModelError
from index.search import ranking
from index.search.bm25 import bm25_idf, bm25_tf, term_counts
from index.search.engine import LexicalQuery
from index.search.features import DECISION_FEATURES, Evidence, Features
from index.search.library_index import ArticleData, LibraryIndex
from index.search.ranker import Ranker, default_ranker
from index.search.ranking import AnswerScorer, ModelScorer, NeutralScorer, QuestionEvidence
from index.store.library import Library
from index.store.vectors import split_id

if TYPE_CHECKING:
    from index.analysis.answer_model import AnswerModel
    from index.analysis.embed import Embedder

#: A scope of at most this many paragraphs is scored whole: no first stage.
SCORE_WHOLE = 120
#: Sentences taken from the faiss index in the first stage.
DENSE_SENTENCES = 200
#: Paragraphs taken from the dense and from the BM25 first stage (at most; the union is scored).
DENSE_PARAGRAPHS = 40
BM25_PARAGRAPHS = 40

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredParagraph:
    """One candidate paragraph, scored.

    Attributes:
        article: the article it belongs to.
        paragraph: its 0-based number in the article.
        score: the ranker's share of belief that it is the answering paragraph (the candidates' shares add
            up to 1).
        sentences: its sentences (article-wide numbers), best first.
        sentence_scores: their ranker scores (linear, unbounded), in the same order.
    """

    article: ArticleData
    paragraph: int
    score: float
    sentences: tuple[int, ...]
    sentence_scores: tuple[float, ...]


@dataclass(frozen=True)
class Ranking:
    """The candidate paragraphs ranked for one question, and whether the collection answers it.

    Attributes:
        paragraphs: the candidates, best first.
        confidence: the probability that the collection searched answers the question.
        features: the features the ranking was made from.
        evidence: the raw evidence behind them.
        articles: how many articles were searched.
        decision: the features ``confidence`` was computed from, by name (``index.search.features.DECISION_FEATURES``).
        degraded: why the answer-sentence model did not weigh in (it could not be loaded), or ``None``.
    """

    paragraphs: tuple[ScoredParagraph, ...]
    confidence: float
    features: Features | None
    evidence: Evidence | None
    articles: int
    decision: dict[str, float] = field(default_factory=dict)
    degraded: str | None = None


@dataclass(frozen=True)
class Candidates:
    """The candidate paragraphs as ``(article, paragraph)`` pairs, and the question's terms and statistics."""

    pairs: list[tuple[ArticleData, int]]
    unique_ids: np.ndarray
    multiplicity: np.ndarray
    weights: np.ndarray
    known: np.ndarray
    sentence_idf: np.ndarray
    sentence_average: float
    paragraph_average: float
    articles: int
    terms: tuple[str, ...] = ()
    unknown_weight: float = 0.0


class Searcher:
    """Hybrid dense + BM25 search over a :class:`~index.store.library.Library`.

    Args:
        library: the library to search.
        embedder: the model its vectors were made with (used for questions).
        ranker: the fitted weights; the shipped ones by default.
        answer_model: the answer-sentence model; the shipped one by default (loaded on first use).
    """

    def __init__(
        self,
        library: Library,
        embedder: Embedder,
        ranker: Ranker | None = None,
        answer_model: AnswerModel | None = None,
    ) -> None:
        self.library = library
        self.embedder = embedder
        self._ranker = ranker
        self._answer_model = answer_model
        self._scorer: AnswerScorer | None = None
        #: Why answers come from the first stage only (the answer-sentence model cannot be loaded), or ``None``.
        self.degraded: str | None = None
        self._query_cache: dict[str, np.ndarray] = {}
        self._index: LibraryIndex | None = None

    @property
    def ranker(self) -> Ranker:
        """The fitted weights (the shipped ones unless others were given), loaded on first use."""
        if self._ranker is None:
            self._ranker = default_ranker()
        return self._ranker

    @property
    def answer_model(self) -> AnswerModel:
        """The answer-sentence model (the shipped one unless another was given), loaded on first use."""
        if self._answer_model is None:
            from index.analysis.answer_model import default_answer_model

            self._answer_model = default_answer_model()
        return self._answer_model

    @property
    def scorer(self) -> AnswerScorer:
        """What reads the candidate sentences: the answer model, or (one warning, when it cannot be loaded) a
        :class:`~index.search.ranking.NeutralScorer`, so that a damaged installation still answers."""
        if self._scorer is None:
            try:
                self._scorer = ModelScorer(self.answer_model)
            except ModelError as exc:
                self.degraded = f"{exc}; answered by the first stage only"
                log.warning("%s", self.degraded)
                self._scorer = NeutralScorer(self.ranker)
        return self._scorer

    @property
    def index(self) -> LibraryIndex:
        """The library in memory, brought up to date (one ``stat`` when nothing changed).

        A new library is seeded with the bundled article and vectors of another model are re-embedded first
        (:meth:`~index.store.library.Library.ensure_ready`).
        """
        index = self.articles_index
        index.sync_engine()
        return index

    @property
    def articles_index(self) -> LibraryIndex:
        """:attr:`index` without bringing the first stage's engine up to date: for reading the library's articles
        (a list, a quote's context), which a Qdrant server that cannot be reached does not stop."""
        self.library.ensure_ready(self.embedder)
        if self._index is None:
            self._index = LibraryIndex(self.library, self.embedder)
        self._index.refresh_articles(force=self._index.generation < 0)
        return self._index

    def encode(self, question: str) -> np.ndarray:
        """Return the question's vector; the last few are kept, so asking again (``more``) costs nothing."""
        vector = self._query_cache.get(question)
        if vector is None:
            if len(self._query_cache) >= 64:
                self._query_cache.pop(next(iter(self._query_cache)))
            vector = self._query_cache[question] = self.embedder.encode_query(question)
        return vector

    # --- stage one ----------------------------------------------------------------------------------

    def candidates(self, question: str, scope: Collection[int] | None = None) -> Candidates:
        """Return the paragraphs worth scoring for ``question`` within ``scope`` (article ids; ``None``: all)."""
        lib = self.index
        keys = lib.keys_of(scope)
        terms = tokenize(question)
        unique = list(dict.fromkeys(terms))
        unique_ids = lib.term_ids(unique)
        multiplicity = np.array([terms.count(t) for t in unique], dtype=np.float64)
        stats = lib.stats(unique_ids, keys)
        weights = bm25_idf(stats.paragraph_df, stats.paragraphs)
        if stats.paragraphs <= SCORE_WHOLE:
            chosen = list(lib.articles.values()) if keys is None else [lib.articles[k] for k in keys]
            pairs = [(data, p) for data in chosen for p in range(len(data.paragraphs))]
        else:
            pairs = self._first_stage(lib, question, keys, unique_ids, unique, weights, stats.paragraph_length)
        return Candidates(
            pairs=pairs,
            unique_ids=unique_ids,
            multiplicity=multiplicity,
            weights=weights,
            known=stats.paragraph_df > 0,
            sentence_idf=bm25_idf(stats.sentence_df, stats.sentences),
            sentence_average=stats.sentence_length,
            paragraph_average=stats.paragraph_length,
            articles=len(lib.articles) if keys is None else len(keys),
            terms=tuple(unique),
            unknown_weight=float(bm25_idf(np.zeros(1), stats.paragraphs)[0]),
        )

    def _first_stage(
        self,
        lib: LibraryIndex,
        question: str,
        keys: list[int] | None,
        unique_ids: np.ndarray,
        terms: list[str],
        weights: np.ndarray,
        average: float,
    ) -> list[tuple[ArticleData, int]]:
        engine = lib.engine
        seen: dict[tuple[int, int], None] = {}
        ids = engine.dense(self.encode(question), DENSE_SENTENCES, keys)
        for key, sentence in zip(*split_id(ids), strict=True):
            data = lib.articles.get(int(key))
            if data is None:
                continue
            seen.setdefault((data.key, int(data.sentence_paragraph[sentence])), None)
            if len(seen) >= DENSE_PARAGRAPHS:
                break
        known = unique_ids >= 0
        query = LexicalQuery(
            terms=tuple(t for t, k in zip(terms, known, strict=True) if k),
            ids=unique_ids[known],
            weights=weights[known],
            average=average,
        )
        for key, paragraph in engine.lexical(query, BM25_PARAGRAPHS, keys):
            if key in lib.articles:
                seen.setdefault((key, paragraph), None)
        pairs = []
        for key, p in sorted(seen):
            data = lib.articles.get(key)  # with Qdrant, read now (None: removed meanwhile)
            if data is not None:
                pairs.append((data, p))
        return pairs

    # --- stage two ----------------------------------------------------------------------------------

    def evidence(self, question: str, c: Candidates) -> tuple[Evidence, np.ndarray]:
        """Return the candidates' raw evidence and, per candidate sentence, its article-wide number."""
        query = self.encode(question)
        sp, cos, numbers, token_parts, lengths = [], [], [], [], []
        digits, words, unique = [], [], []
        chunk_first, chunk_last, chunk_cos = [], [], []
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        local = 0
        # The pairs come grouped by article (see candidates): each article's paragraphs in one go.
        for data, group in _groups(c.pairs):
            firsts = data.paragraph_sentences[group]
            sizes = data.paragraph_sentences[group + 1] - firsts
            idx = _ranges(firsts, sizes)
            s_cos = data.vectors[idx] @ query
            cos.append(s_cos)
            sp.append(np.repeat(np.arange(local, local + len(group)), sizes))
            numbers.append(idx)
            t_start = data.token_offsets[idx]
            t_size = data.token_offsets[idx + 1] - t_start
            token_parts.append(data.tokens[_ranges(t_start, t_size)])
            offsets.append(np.cumsum(t_size) + offsets[-1][-1])
            lengths.append(data.sentence_length[idx])
            digits.append(data.sentence_digit[idx])
            words.append(data.sentence_words[idx])
            unique.append(data.sentence_unique[idx])
            position = np.full(len(data.sentences), -1, dtype=np.int64)
            position[idx] = np.arange(len(idx))
            chosen = np.flatnonzero(position[data.chunk_first] >= 0)
            c_first = position[data.chunk_first[chosen]]
            c_last = position[data.chunk_last[chosen] - 1] + 1
            cumulative = np.concatenate([[0.0], np.cumsum(s_cos, dtype=np.float64)])
            chunk_cos.append((cumulative[c_last] - cumulative[c_first]) * data.chunk_inverse_norm[chosen])
            chunk_first.append(c_first + base)
            chunk_last.append(c_last + base)
            base += len(idx)
            local += len(group)
        cat = np.concatenate
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        sentence_paragraph = cat(sp) if sp else empty_i
        tokens = cat(token_parts) if token_parts else np.zeros(0, dtype=np.int32)
        token_offsets = cat(offsets).astype(np.int64)
        counts = term_counts(tokens, token_offsets, c.unique_ids)
        sentence_length = cat(lengths) if lengths else empty_f
        # BM25 of sentences (documents: the collection's sentences) and of paragraphs, from the counts.
        weights = c.sentence_idf * c.multiplicity
        sentence_bm25 = (bm25_tf(counts, sentence_length[:, None], c.sentence_average) * weights).sum(axis=1)
        m = len(c.pairs)
        paragraph_counts = np.zeros((m, len(c.unique_ids)))
        if len(sentence_paragraph):
            np.add.at(paragraph_counts, sentence_paragraph, counts)
        paragraph_length = np.array([data.paragraph_length[p] for data, p in c.pairs], dtype=np.float64)
        paragraph_bm25 = (
            bm25_tf(paragraph_counts, paragraph_length[:, None], c.paragraph_average) * (c.weights * c.multiplicity)
        ).sum(axis=1)
        s_bigrams, p_bigrams = _bigrams(tokens, token_offsets, sentence_paragraph, c.unique_ids, m)
        ev = Evidence(
            paragraphs=m,
            sentence_paragraph=sentence_paragraph,
            sentence_cosine=cat(cos).astype(np.float64) if cos else empty_f,
            chunk_cosine=cat(chunk_cos) if chunk_cos else empty_f,
            chunk_first=cat(chunk_first).astype(np.int64) if chunk_first else empty_i,
            chunk_last=cat(chunk_last).astype(np.int64) if chunk_last else empty_i,
            paragraph_bm25=paragraph_bm25,
            sentence_bm25=sentence_bm25,
            presence=counts > 0,
            sentence_bigrams=s_bigrams,
            paragraph_bigrams=p_bigrams,
            pairs=max(len(c.unique_ids) - 1, 0),
            sentence_digit=cat(digits).astype(np.float64) if digits else empty_f,
            sentence_words=cat(words).astype(np.float64) if words else empty_f,
            sentence_unique=cat(unique).astype(np.float64) if unique else empty_f,
            weights=c.weights,
            known=c.known,
        )
        return ev, cat(numbers) if numbers else empty_i

    def gather(self, question: str, c: Candidates) -> QuestionEvidence:
        """Return ``question``'s evidence against the candidates ``c``, as the ranking stages read it."""
        ev, numbers = self.evidence(question, c)
        return QuestionEvidence.of(question, c.pairs, ev, numbers, c.terms, c.weights, c.known, c.unknown_weight)

    def rank(self, question: str, scope: Collection[int] | None = None) -> Ranking:
        """Rank the paragraphs of the articles in ``scope`` (ids; ``None``: the whole library) for ``question``.

        The stages after the evidence are :func:`index.search.ranking.rank`'s, the ones ``benchmarks/tune.py`` fits.
        """
        c = self.candidates(question, scope)
        if not c.pairs:
            return Ranking((), 0.0, None, None, c.articles)
        qe = self.gather(question, c)
        ranked = ranking.rank(qe, self.ranker, self.scorer)
        logits, s_score, sp = ranked.ordered.paragraph, ranked.ordered.sentence, qe.sentence_paragraph
        share = np.exp(logits - logits.max(initial=0.0))
        share /= share.sum() or 1.0
        s_order = np.lexsort((-s_score, sp))  # by paragraph, best sentence first
        bounds = np.searchsorted(sp[s_order], np.arange(len(c.pairs) + 1))
        ordered_numbers = qe.numbers[s_order].tolist()
        ordered_scores = s_score[s_order].tolist()
        scored = []
        for p in ranked.ordered.order.tolist():
            a, b = int(bounds[p]), int(bounds[p + 1])
            data, number = c.pairs[p]
            scored.append(
                ScoredParagraph(
                    article=data,
                    paragraph=number,
                    score=float(share[p]),
                    sentences=tuple(ordered_numbers[a:b]),
                    sentence_scores=tuple(ordered_scores[a:b]),
                )
            )
        decision = dict(zip(DECISION_FEATURES, (float(v) for v in ranked.decision), strict=True))
        return Ranking(tuple(scored), ranked.confidence, qe.features, qe.evidence, c.articles, decision, self.degraded)


def _groups(pairs: list[tuple[ArticleData, int]]) -> list[tuple[ArticleData, np.ndarray]]:
    """Return the runs of ``pairs`` that share an article, as ``(article, paragraph numbers)``."""
    out: list[tuple[ArticleData, list[int]]] = []
    for data, p in pairs:
        if out and out[-1][0] is data:
            out[-1][1].append(p)
        else:
            out.append((data, [p]))
    return [(data, np.array(ps, dtype=np.int64)) for data, ps in out]


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Return the concatenation of ``arange(start, start + size)`` for each pair, without a Python loop."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - np.cumsum(sizes) + sizes, sizes) + np.arange(total)


def _bigrams(
    tokens: np.ndarray, offsets: np.ndarray, sentence_paragraph: np.ndarray, unique_ids: np.ndarray, paragraphs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return per sentence and per paragraph how many of the question's adjacent term pairs they hold."""
    sentences = len(offsets) - 1
    s_out = np.zeros(max(sentences, 0))
    p_out = np.zeros(paragraphs)
    if len(unique_ids) < 2 or len(tokens) < 2:
        return s_out, p_out
    owner = np.repeat(np.arange(sentences), np.diff(offsets))
    p_owner = sentence_paragraph[owner]
    left, right = tokens[:-1], tokens[1:]
    for a, b in itertools.pairwise(unique_ids):
        if a < 0 or b < 0:
            continue
        at = np.flatnonzero((left == a) & (right == b))
        if not len(at):
            continue
        same_sentence = at[owner[at] == owner[at + 1]]
        s_out[np.unique(owner[same_sentence])] += 1.0
        same_paragraph = at[p_owner[at] == p_owner[at + 1]]
        p_out[np.unique(p_owner[same_paragraph])] += 1.0
    return s_out, p_out
