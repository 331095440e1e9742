"""The second stage: the answer-sentence model reads the best candidates, and its logits reorder them.

The first stage (:mod:`index.search.features`, :mod:`index.search.ranker`) ranks every candidate paragraph and
sentence from cheap evidence. The answer-sentence model (:mod:`index.analysis.answer_model`) costs about 4 ms a
sentence on one thread, so it reads only what a :class:`Reading` chooses: the best few sentences of the first few
paragraphs, and the sentences at the top of each of the first stage's lists (its own sentence score, the dense
cosine, BM25), so that a question asked in other words, whose sentence only one list ranks high, is still read.
Its logits then weigh in three decisions, each a fitted linear model (``index/data/ranker.json``, which also
records the :class:`Reading` it was fitted with):

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
from typing import Any

import numpy as np

#: Per first-stage paragraph rank, how many of its best sentences the answer-sentence model reads. Three pairs, not
#: the four of (2, 1, 1): a quarter less time for the same held-out figures (docs/quality.md, "Three sentences").
ANSWER_SENTENCES = (2, 1)


@dataclass(frozen=True)
class Reading:
    """Which candidate sentences the answer-sentence model reads for one question.

    Attributes:
        per_rank: ``per_rank[i]`` sentences (by the first stage's sentence score) of the paragraph ranked ``i``-th.
        each_list: besides those, the first ``each_list`` sentences of each of the first stage's three sentence
            lists: its sentence score, the dense cosine and BM25 (a sentence without any question term is not in
            the BM25 list).
        limit: at most this many sentences in all (the ``per_rank`` ones are read whatever it is).
        sure_margin: when the first paragraph's first-stage logit leads the second's by this much or more, only
            ``per_rank`` is read (``None``: never).
    """

    per_rank: tuple[int, ...] = ANSWER_SENTENCES
    each_list: int = 0
    limit: int = 12
    sure_margin: float | None = None

    def __post_init__(self) -> None:
        if any(n < 0 for n in self.per_rank) or self.each_list < 0 or self.limit < 1:
            raise ValueError(f"a reading needs counts of 0 or more and a limit of 1 or more, got {self}")

    @classmethod
    def parse(cls, text: str) -> Reading:
        """Return the reading that ``text`` writes as ``PER_RANK[+EACH_LIST[/LIMIT]][@SURE_MARGIN]``, e.g. ``2,1``,
        ``2,1+4/12`` or ``2,1+4/12@3``.

        Raises:
            ValueError: naming the form expected.
        """
        try:
            text, _, margin = text.partition("@")
            ranks, _, rest = text.partition("+")
            each, _, limit = rest.partition("/")
            return cls(
                tuple(int(x) for x in ranks.split(",") if x.strip()),
                int(each) if each else 0,
                int(limit) if limit else cls.limit,
                float(margin) if margin else None,
            )
        except ValueError:
            raise ValueError(
                f"expected PER_RANK[+EACH_LIST[/LIMIT]][@SURE_MARGIN] such as 2,1 or 2,1+4/12@3, got {text!r}"
            ) from None

    def __str__(self) -> str:
        text = ",".join(str(n) for n in self.per_rank)
        if self.each_list:
            text += f"+{self.each_list}/{self.limit}"
        return text + (f"@{self.sure_margin:g}" if self.sure_margin is not None else "")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Reading:
        """Return the reading ``ranker.json`` records (``None``: what files without one were fitted with)."""
        if data is None:
            return cls()
        margin = data.get("sure_margin")
        return cls(
            tuple(int(n) for n in data["per_rank"]),
            int(data.get("each_list", 0)),
            int(data.get("limit", cls.limit)),
            None if margin is None else float(margin),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_rank": list(self.per_rank),
            "each_list": self.each_list,
            "limit": self.limit,
            "sure_margin": self.sure_margin,
        }


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


def _top(scores: np.ndarray, among: np.ndarray, n: int) -> list[int]:
    """Return the ``n`` best of the sentences ``among`` by ``scores`` (stable: earlier first on ties)."""
    return among[np.argsort(-scores[among], kind="stable")[:n]].tolist()


def answer_candidates(
    paragraph_score: np.ndarray,
    sentence_score: np.ndarray,
    sentence_paragraph: np.ndarray,
    reading: Reading = Reading(),
    dense: np.ndarray | None = None,
    bm25: np.ndarray | None = None,
) -> np.ndarray:
    """Return the sentences the answer model should read (candidate-wide numbers), in the order chosen.

    First ``reading.per_rank[i]`` sentences, by ``sentence_score``, of the paragraph ranked ``i``-th by
    ``paragraph_score``; then, unless the first stage is sure (``reading.sure_margin``), the top of the lists by
    ``sentence_score``, ``dense`` and ``bm25`` (per sentence, as :class:`~index.search.features.Evidence` holds
    them), taken in turn, rank by rank, until ``reading.limit`` sentences are chosen.
    """
    chosen: list[int] = []
    order = np.argsort(-paragraph_score, kind="stable")
    for rank, paragraph in enumerate(order[: len(reading.per_rank)].tolist()):
        members = np.flatnonzero(sentence_paragraph == paragraph)
        chosen += _top(sentence_score, members, reading.per_rank[rank])
    sure = (
        reading.sure_margin is not None
        and len(order) > 1
        and paragraph_score[order[0]] - paragraph_score[order[1]] >= reading.sure_margin
    )
    if reading.each_list and not sure:
        everything = np.arange(len(sentence_paragraph))
        lists = [_top(sentence_score, everything, reading.each_list)]
        if dense is not None:
            lists.append(_top(dense, everything, reading.each_list))
        if bm25 is not None:
            lists.append(_top(bm25, np.flatnonzero(bm25 > 0), reading.each_list))
        seen = set(chosen)
        for rank in range(reading.each_list):
            for ranked in lists:
                if rank < len(ranked) and ranked[rank] not in seen and len(chosen) < reading.limit:
                    seen.add(ranked[rank])
                    chosen.append(ranked[rank])
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
