"""Ranker: the fitted linear models that weigh the features of :mod:`index.search.features`.

Small linear models, fitted by ``benchmarks/tune.py`` on SQuAD with
article-wise cross-validation and shipped as ``index/data/ranker.json``,
turn the features into:

* a paragraph score (a softmax over the candidate paragraphs was fitted to put
  the answering paragraph first);
* a sentence score (a softmax over a paragraph's sentences was fitted to pick
  the one holding the answer);
* the same two again in the second stage, with the answer-sentence model's logits beside the first
  stage's scores (:mod:`index.search.rerank`);
* the probability that the collection answers the question at all (a logistic
  regression of questions from the articles against questions they do not
  answer: other articles', asked of one article and of a library; questions
  asked with their answering paragraph held back; SQuAD 2.0's unanswerable ones).

Everything here is numpy; nothing is fitted at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from index.search.features import DECISION_FEATURES, PARAGRAPH_FEATURES, SENTENCE_FEATURES
from index.search.rerank import (
    RERANK_PARAGRAPH_FEATURES,
    RERANK_SENTENCE_FEATURES,
    AnswerEvidence,
    Reading,
    paragraph_columns,
    sentence_columns,
)


@dataclass(frozen=True)
class Linear:
    """A standardised linear score: ``((x - mean) / scale) @ weights + bias``."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    @classmethod
    def from_dict(cls, data: dict[str, Any], expected: tuple[str, ...]) -> Linear:
        names = tuple(data["features"])
        if names != expected:
            raise ValueError(f"ranker parameters are for features {names}, the code computes {expected}")
        return cls(
            names,
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["weights"], dtype=np.float64),
            float(data.get("bias", 0.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.names),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(float(self.bias), 6),
        }


@dataclass(frozen=True)
class Ranker:
    """The fitted models: the first stage's paragraph and sentence scores, the second stage's, the decision."""

    paragraph: Linear
    sentence: Linear
    rerank_paragraph: Linear
    rerank_sentence: Linear
    decision: Linear
    about: str = ""
    #: The sentences the answer model read when these were fitted: what it reads when they run.
    reading: Reading = field(default_factory=Reading)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ranker:
        return cls(
            paragraph=Linear.from_dict(data["paragraph"], PARAGRAPH_FEATURES),
            sentence=Linear.from_dict(data["sentence"], SENTENCE_FEATURES),
            rerank_paragraph=Linear.from_dict(data["rerank_paragraph"], RERANK_PARAGRAPH_FEATURES),
            rerank_sentence=Linear.from_dict(data["rerank_sentence"], RERANK_SENTENCE_FEATURES),
            decision=Linear.from_dict(data["decision"], DECISION_FEATURES),
            about=str(data.get("about", "")),
            reading=Reading.from_dict(data.get("reading")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "about": self.about,
            "paragraph": self.paragraph.to_dict(),
            "sentence": self.sentence.to_dict(),
            "rerank_paragraph": self.rerank_paragraph.to_dict(),
            "rerank_sentence": self.rerank_sentence.to_dict(),
            "decision": self.decision.to_dict(),
            "reading": self.reading.to_dict(),
        }

    def second_stage(
        self, paragraph: np.ndarray, sentence: np.ndarray, read: AnswerEvidence
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the second stage's paragraph logits and sentence scores.

        ``paragraph`` and ``sentence`` are the first stage's scores of every candidate, ``read`` the answer
        model's logits spread over them (:func:`index.search.rerank.spread`).
        """
        return (
            self.rerank_paragraph(paragraph_columns(paragraph, read)),
            self.rerank_sentence(sentence_columns(sentence, read)),
        )

    def confidence(self, x: np.ndarray) -> float:
        """Return the decision model's probability (0 to 1) that the collection answers the question."""
        return float(1.0 / (1.0 + np.exp(-float(self.decision(x)))))


@lru_cache(maxsize=1)
def default_ranker() -> Ranker:
    """Return the shipped parameters (``index/data/ranker.json``)."""
    text = (resources.files("index") / "data" / "ranker.json").read_text(encoding="utf-8")
    return Ranker.from_dict(json.loads(text))
