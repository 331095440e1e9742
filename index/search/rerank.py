"""The second stage: the answer-sentence model reads the best candidates, and its logits reorder them.

The first stage (:mod:`index.search.features`, :mod:`index.search.ranker`) ranks every candidate paragraph and
sentence from cheap evidence. The answer-sentence model (:mod:`index.analysis.answer_model`) costs a few
milliseconds a sentence, so it reads only :data:`ANSWER_SENTENCES`: the best few sentences of the first few
paragraphs. Its logits then weigh in three decisions, each a fitted linear model (``index/data/ranker.json``):

* which paragraph comes first: the first stage's paragraph score beside the best logit among its sentences;
* which sentence is marked: the first stage's sentence score beside the sentence's logit;
* the verdict: the logit of the marked sentence and the best logit read (:data:`ANSWER_FEATURES`, added to the
  decision's features).

A paragraph or sentence the model did not read takes the lowest logit read as its own: with weights that are
not negative, it can never climb above one that was read. Everything here is numpy and shared by
:class:`index.search.retrieve.Searcher` and ``benchmarks/tune.py``, so what is fitted is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Per first-stage paragraph rank, how many of its best sentences the answer-sentence model reads. Three pairs, not
#: the four of (2, 1, 1): a quarter less time for the same held-out figures (docs/quality.md, "Three sentences").
ANSWER_SENTENCES = (2, 1)

RERANK_PARAGRAPH_FEATURES = (
    "first_stage",  # the first stage's paragraph score (a logit)
    "answer_model",  # the best answer-model logit among its sentences read (else the lowest read)
)
RERANK_SENTENCE_FEATURES = (
    "first_stage",  # the first stage's sentence score
    "answer_model",  # the sentence's answer-model logit (else the lowest read in its paragraph)
)
#: The decision's features from the answer model, appended to :data:`index.search.features.DECISION_FEATURES`.
ANSWER_FEATURES = (
    "answer_model",  # the answer-model logit of the marked sentence
    "answer_model_best",  # the best logit of any sentence read
)


def answer_candidates(
    paragraph_score: np.ndarray,
    sentence_score: np.ndarray,
    sentence_paragraph: np.ndarray,
    budget: tuple[int, ...] = ANSWER_SENTENCES,
) -> np.ndarray:
    """Return the sentences the answer model should read (candidate-wide numbers), best paragraph first.

    ``budget[i]`` sentences, by ``sentence_score``, of the paragraph ranked ``i``-th by ``paragraph_score``.
    """
    chosen: list[int] = []
    order = np.argsort(-paragraph_score, kind="stable")
    for rank, paragraph in enumerate(order[: len(budget)].tolist()):
        members = np.flatnonzero(sentence_paragraph == paragraph)
        best = members[np.argsort(-sentence_score[members], kind="stable")[: budget[rank]]]
        chosen += best.tolist()
    return np.array(chosen, dtype=np.int64)


@dataclass(frozen=True)
class AnswerEvidence:
    """The answer model's logits spread over the candidates.

    Attributes:
        paragraph: per paragraph, the best logit among its sentences read (the lowest read if none was).
        sentence: per sentence, its logit (the lowest read in its paragraph, or overall, if not read).
        read: per sentence, whether the model read it.
    """

    paragraph: np.ndarray
    sentence: np.ndarray
    read: np.ndarray

    def decision(self, marked: int | None) -> tuple[float, float]:
        """Return :data:`ANSWER_FEATURES` for the ``marked`` sentence (``None``: nothing to mark)."""
        if not self.read.any():
            return (0.0, 0.0)
        best = float(self.sentence[self.read].max())
        return (float(self.sentence[marked]) if marked is not None else best, best)


def spread(logits: np.ndarray, chosen: np.ndarray, sentence_paragraph: np.ndarray, paragraphs: int) -> AnswerEvidence:
    """Return the :class:`AnswerEvidence` of ``logits``, the answer model's scores of the ``chosen`` sentences."""
    n = len(sentence_paragraph)
    read = np.zeros(n, dtype=bool)
    if not len(chosen):
        return AnswerEvidence(np.zeros(paragraphs), np.zeros(n), read)
    read[chosen] = True
    floor = float(logits.min())
    sentence = np.full(n, floor)
    sentence[chosen] = logits
    paragraph = np.full(paragraphs, -np.inf)
    np.maximum.at(paragraph, sentence_paragraph[chosen], logits)
    lowest = np.full(paragraphs, np.inf)
    np.minimum.at(lowest, sentence_paragraph[chosen], logits)
    inside = np.isfinite(lowest)
    sentence = np.where(read | ~inside[sentence_paragraph], sentence, lowest[sentence_paragraph])
    paragraph = np.where(np.isfinite(paragraph), paragraph, floor)
    return AnswerEvidence(paragraph, sentence, read)


def paragraph_columns(first_stage: np.ndarray, read: AnswerEvidence) -> np.ndarray:
    """Return the second stage's paragraph features (:data:`RERANK_PARAGRAPH_FEATURES`), a row per paragraph."""
    return np.column_stack([first_stage, read.paragraph])


def sentence_columns(first_stage: np.ndarray, read: AnswerEvidence) -> np.ndarray:
    """Return the second stage's sentence features (:data:`RERANK_SENTENCE_FEATURES`), a row per sentence."""
    return np.column_stack([first_stage, read.sentence])
