"""Ranking: the stages after the evidence is gathered, once, for the product and for its tuning.

:class:`~index.search.retrieve.Searcher` gathers a question's evidence against its candidate paragraphs (the first
stage's candidates, :mod:`index.search.features`' rows) into a :class:`QuestionEvidence`. Everything after that is
here, as functions of that record:

1. :func:`first_stage`: the first stage's paragraph and sentence scores, and the answer model's logits of the
   sentences it reads (:func:`index.search.rerank.answer_candidates`), through an :class:`AnswerScorer`;
2. :func:`second_stage`: the paragraph order and the marked sentence, with those logits beside the first stage's
   scores;
3. :func:`decision_row`: the features of the "does the collection answer it" decision, and
   :meth:`~index.search.ranker.Ranker.confidence` over them.

:func:`rank` chains the three. ``Searcher.rank`` calls it with the shipped answer model (:class:`ModelScorer`);
``benchmarks/tune.py`` calls the same functions on cached evidence, with cached held-out logits, to fit the weights
in ``index/data/ranker.json``: what is fitted is what runs, and ``tests/search/test_ranking.py`` holds the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.analysis.words import tokenize
from index.search.answerability import Collection as TermWeights
from index.search.answerability import signals
from index.search.features import Evidence, Features, decision_features, features
from index.search.ranker import Linear, Ranker
from index.search.rerank import ANSWER_FEATURES, AnswerEvidence, Reading, answer_candidates, spread

if TYPE_CHECKING:
    from index.analysis.answer_model import AnswerModel
    from index.search.library_index import ArticleData


@dataclass(frozen=True)
class QuestionEvidence:
    """One question's evidence against its candidate paragraphs: all that the ranking stages read.

    Attributes:
        question: the question as asked.
        pairs: the candidate paragraphs, as ``(article, paragraph number in it)``.
        evidence: the raw evidence (sentences grouped by candidate paragraph, in order).
        numbers: per candidate sentence, its article-wide number.
        features: the named features computed from ``evidence``.
        weights: the IDF of the collection searched, for the answerability signals.
    """

    question: str
    pairs: Sequence[tuple[ArticleData, int]]
    evidence: Evidence
    numbers: np.ndarray
    features: Features
    weights: TermWeights

    @classmethod
    def of(
        cls,
        question: str,
        pairs: Sequence[tuple[ArticleData, int]],
        evidence: Evidence,
        numbers: np.ndarray,
        terms: Sequence[str],
        idf: np.ndarray,
        known: np.ndarray,
        unknown_idf: float,
    ) -> QuestionEvidence:
        """Return the record of ``evidence``, its features computed; ``terms``, ``idf`` and ``known`` are the
        question's distinct terms, their IDF and whether the collection has them (``unknown_idf``: the weight
        of one it lacks)."""
        weights = TermWeights({t: float(w) for t, w, k in zip(terms, idf, known, strict=True) if k}, unknown_idf)
        return cls(question, pairs, evidence, numbers, features(evidence, question), weights)

    @property
    def sentence_paragraph(self) -> np.ndarray:
        """Per candidate sentence, its candidate paragraph (0 to ``len(pairs) - 1``)."""
        return self.evidence.sentence_paragraph

    def sentence_text(self, i: int) -> str:
        """Return the text of candidate sentence ``i``."""
        return self.pairs[int(self.sentence_paragraph[i])][0].sentence_text(int(self.numbers[i]))

    def signals(self, top: int, best: int | None) -> dict[str, float]:
        """Return the answerability signals of candidate paragraph ``top`` with sentence ``best`` marked."""
        data, paragraph = self.pairs[top]
        sentence = self.sentence_text(best) if best is not None else ""
        return signals(self.question, sentence, data.paragraph_text(paragraph), self.weights, tokenize(self.question))


class AnswerScorer(Protocol):
    """What reads candidate sentences: the shipped answer model, or the tuning's cached held-out logits."""

    def __call__(self, evidence: QuestionEvidence, chosen: np.ndarray) -> np.ndarray:
        """Return a logit per sentence in ``chosen`` (candidate-wide numbers), "this sentence answers it"."""
        ...


class ModelScorer:
    """An :class:`AnswerScorer` that runs an answer-sentence model on the chosen sentences' texts."""

    def __init__(self, model: AnswerModel) -> None:
        self.model = model

    def __call__(self, evidence: QuestionEvidence, chosen: np.ndarray) -> np.ndarray:
        """Return the model's logits of the ``chosen`` sentences."""
        return self.model.score(evidence.question, [evidence.sentence_text(int(i)) for i in chosen])


class NeutralScorer:
    """An :class:`AnswerScorer` for when the answer model cannot be loaded: every sentence read gets one logit, the
    decision model's mean logit, so the order and the marked sentence are the first stage's and the verdict's
    answer-model features lean neither way."""

    def __init__(self, ranker: Ranker) -> None:
        decision = ranker.decision
        self.logit = float(decision.mean[list(decision.names).index(ANSWER_FEATURES[0])])

    def __call__(self, evidence: QuestionEvidence, chosen: np.ndarray) -> np.ndarray:
        """Return :attr:`logit` for each of the ``chosen`` sentences."""
        return np.full(len(chosen), self.logit)


@dataclass(frozen=True)
class Staged:
    """The first stage's scores of every candidate, and what the answer model made of the sentences it read.

    Attributes:
        paragraph: per candidate paragraph, the first stage's score (a logit).
        sentence: per candidate sentence, likewise.
        read: the answer model's logits spread over the candidates.
    """

    paragraph: np.ndarray
    sentence: np.ndarray
    read: AnswerEvidence


@dataclass(frozen=True)
class Ordered:
    """The second stage's outcome.

    Attributes:
        paragraph: per candidate paragraph, the second stage's logit.
        sentence: per candidate sentence, the second stage's score.
        order: the candidate paragraphs, best first.
        top: the first paragraph (``order[0]``).
        best: its marked sentence (candidate-wide), or ``None`` when it has no sentence.
    """

    paragraph: np.ndarray
    sentence: np.ndarray
    order: np.ndarray
    top: int
    best: int | None


@dataclass(frozen=True)
class Ranked:
    """Every stage's outcome for one question.

    Attributes:
        staged: the first stage and what the answer model read.
        ordered: the paragraph order and the marked sentence.
        decision: the decision's features (:data:`index.search.features.DECISION_FEATURES`).
        confidence: the probability that the collection answers the question.
    """

    staged: Staged
    ordered: Ordered
    decision: np.ndarray
    confidence: float


def first_stage(
    ev: QuestionEvidence, paragraph: Linear, sentence: Linear, scorer: AnswerScorer, reading: Reading
) -> Staged:
    """Return the first stage's scores under the models ``paragraph`` and ``sentence``, and the logits ``scorer``
    gives the sentences that ``reading`` chooses from them."""
    p, s = paragraph(ev.features.paragraphs), sentence(ev.features.sentences)
    raw = ev.evidence
    chosen = answer_candidates(p, s, ev.sentence_paragraph, reading, raw.sentence_cosine, raw.sentence_bm25)
    return Staged(p, s, spread(scorer(ev, chosen), chosen, ev.sentence_paragraph, len(ev.pairs)))


def second_stage(ev: QuestionEvidence, ranker: Ranker, staged: Staged) -> Ordered:
    """Return the paragraph order and the marked sentence, as ``ranker``'s second stage decides them."""
    logits, s_score = ranker.second_stage(staged.paragraph, staged.sentence, staged.read)
    order = np.argsort(-logits, kind="stable")
    top = int(order[0])
    members = np.flatnonzero(ev.sentence_paragraph == top)
    best = int(members[np.argmax(s_score[members])]) if len(members) else None
    return Ordered(logits, s_score, order, top, best)


def decision_row(ev: QuestionEvidence, staged: Staged, ordered: Ordered) -> np.ndarray:
    """Return the decision's features of the first paragraph and its marked sentence."""
    top, best = ordered.top, ordered.best
    background = ev.pairs[top][0].background
    return decision_features(ev.features, top, best, background, ev.signals(top, best), staged.read.decision(best))


def rank(ev: QuestionEvidence, ranker: Ranker, scorer: AnswerScorer, reading: Reading | None = None) -> Ranked:
    """Return every stage's outcome for ``ev`` under ``ranker``, the answer model's logits from ``scorer`` for the
    sentences ``reading`` chooses (``None``: the reading ``ranker`` was fitted with)."""
    staged = first_stage(ev, ranker.paragraph, ranker.sentence, scorer, reading or ranker.reading)
    ordered = second_stage(ev, ranker, staged)
    x = decision_row(ev, staged, ordered)
    return Ranked(staged, ordered, x, ranker.confidence(x))
