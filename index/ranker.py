"""Ranker: a few score features per paragraph and per sentence, weighed by fitted linear models.

Three small linear models, fitted by ``benchmarks/tune.py`` on SQuAD with
article-wise cross-validation and shipped as ``index/data/ranker.json``,
turn the raw dense and BM25 scores of :class:`index.retrieve.Evidence` into:

* a paragraph score (a softmax over the article's paragraphs was fitted to put
  the answering paragraph first);
* a sentence score (a softmax over a paragraph's sentences was fitted to pick
  the one holding the answer);
* the probability that the article answers the question at all (a logistic
  regression of questions from the article against questions from other articles).

Everything here is numpy; nothing is fitted at run time.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from index.background import Background
    from index.retrieve import Evidence

#: Questions that ask for a number, a date or an amount: their answer sentence usually holds a digit.
_NUMERIC_QUESTION = re.compile(
    r"\b(how (many|much|long|old|far|large|big|high|tall|often|fast)|what (year|percentage|percent|date|number"
    r"|time|age|decade|century)|which (year|century|decade)|when|in what year)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")

PARAGRAPH_FEATURES = (
    "dense",  # best cosine of the paragraph's chunks and sentences
    "dense_gap",  # that minus the best paragraph's
    "dense_second",  # the second-best sentence cosine of the paragraph
    "bm25_share",  # BM25 over the best paragraph's
    "sentence_bm25_share",  # the paragraph's best sentence BM25 over the article's best
    "idf_coverage",  # share of the question's IDF mass found in the paragraph
    "bigram_coverage",  # share of the question's word pairs found in the paragraph
    "sentence_best",  # the best sentence's fused evidence (cosine + its IDF coverage)
)
SENTENCE_FEATURES = (
    "cosine",  # the sentence's cosine with the question
    "cosine_gap",  # minus the paragraph's best sentence cosine
    "chunk_cosine",  # best cosine of a chunk holding it
    "neighbour_cosine",  # best cosine of the sentence before or after it, same paragraph
    "bm25_share",  # its BM25 over the paragraph's best sentence's
    "idf_coverage",  # share of the question's IDF mass in the sentence
    "bigram_coverage",
    "digit_match",  # the question asks for a number or date and the sentence holds a digit
    "first",  # it opens the paragraph
    "length",  # log of its length in words
    "previous_cosine",  # the cosine of the sentence before it (same paragraph; -1 for the first)
    "previous_idf_coverage",  # the share of the question's IDF mass in the sentence before it
    "next_idf_coverage",  # ... in the sentence after it
    "novel_words",  # log of how many of its content words the question does not have (the answer is new)
)
DECISION_FEATURES = (
    "best_cosine_z",  # best cosine of any sentence or chunk, in background deviations (index.background)
    "top_dense_z",  # the first paragraph's dense evidence, likewise
    "coverage",  # share of the question's content words found in the article
    "idf_coverage",  # share of the question's IDF mass found in the article
    "top_idf_coverage",  # share found in the first paragraph
    "top_sentence_idf_coverage",  # share found in the marked sentence
    "no_terms",  # the question has no content word at all
)


def _bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(tokens))


class ArticleStats:
    """What the features need to know about an article, computed once per index.

    Args:
        paragraph_tokens: each paragraph's stemmed content words, in order.
        sentence_tokens: each sentence's, in order.
        sentence_texts: each sentence's text.
        sentence_paragraph: each sentence's 0-based paragraph.
        chunk_spans: each chunk's ``(first, last)`` sentence range (``last`` exclusive).
    """

    def __init__(
        self,
        paragraph_tokens: list[list[str]],
        sentence_tokens: list[list[str]],
        sentence_texts: list[str],
        sentence_paragraph: np.ndarray,
        chunk_spans: list[tuple[int, int]],
    ) -> None:
        self.paragraphs = len(paragraph_tokens)
        self.sentences = len(sentence_tokens)
        self.sentence_paragraph = sentence_paragraph
        n = max(self.paragraphs, 1)
        df: dict[str, int] = {}
        for tokens in paragraph_tokens:
            for token in set(tokens):
                df[token] = df.get(token, 0) + 1
        self.idf = {t: float(np.log(1 + (n - d + 0.5) / (d + 0.5))) for t, d in df.items()}
        #: The weight of a question word the article does not have: as rare as a word can be.
        self.unknown_idf = float(np.log(1 + (n + 0.5) / 0.5))
        self._p_index = _incidence(paragraph_tokens)
        self._s_index = _incidence(sentence_tokens)
        self._p_bigrams = _incidence([list(_bigrams(t)) for t in paragraph_tokens])
        self._s_bigrams = _incidence([list(_bigrams(t)) for t in sentence_tokens])
        self.sentence_digit = np.array([bool(_DIGIT.search(t)) for t in sentence_texts], dtype=np.float64)
        self.sentence_length = np.log1p(np.array([len(t.split()) for t in sentence_texts], dtype=np.float64))
        first = np.ones(self.sentences, dtype=bool)
        if self.sentences:
            first[1:] = sentence_paragraph[1:] != sentence_paragraph[:-1]
        self.sentence_first = first.astype(np.float64)
        last = np.ones(self.sentences, dtype=bool)
        if self.sentences:
            last[:-1] = sentence_paragraph[:-1] != sentence_paragraph[1:]
        self._has_prev = ~first
        self._has_next = ~last
        self.sentence_unique = np.array([len(set(t)) for t in sentence_tokens], dtype=np.float64)
        # For each chunk, the sentences it holds: chunk cosine -> best chunk cosine per sentence.
        self._chunk_of = np.array([c for c, (a, b) in enumerate(chunk_spans) for _ in range(a, b)], dtype=np.int64)
        self._chunk_sentence = np.array([s for a, b in chunk_spans for s in range(a, b)], dtype=np.int64)

    def weights(self, terms: list[str]) -> tuple[list[str], np.ndarray]:
        """Return the question's distinct terms and their IDF weights (unknown words weigh the most)."""
        unique = list(dict.fromkeys(terms))
        return unique, np.array([self.idf.get(t, self.unknown_idf) for t in unique], dtype=np.float64)

    def coverage(self, terms: list[str], weights: np.ndarray, sentences: bool) -> np.ndarray:
        """Return per paragraph (or sentence) the share of the question's IDF mass it contains."""
        size = self.sentences if sentences else self.paragraphs
        index = self._s_index if sentences else self._p_index
        out = np.zeros(size, dtype=np.float64)
        total = weights.sum()
        if not total:
            return out
        for term, weight in zip(terms, weights, strict=True):
            members = index.get(term)
            if members is not None:
                out[members] += weight
        return out / total

    def bigram_coverage(self, terms: list[str], sentences: bool) -> np.ndarray:
        """Return per paragraph (or sentence) the share of the question's adjacent word pairs it contains."""
        size = self.sentences if sentences else self.paragraphs
        index = self._s_bigrams if sentences else self._p_bigrams
        pairs = _bigrams(terms)
        out = np.zeros(size, dtype=np.float64)
        for pair in pairs:
            members = index.get(pair)
            if members is not None:
                out[members] += 1.0
        return out / len(pairs) if pairs else out

    def neighbour_max(self, values: np.ndarray) -> np.ndarray:
        """Return the larger of each sentence's neighbours' values within its paragraph (-1 when alone)."""
        out = np.full(self.sentences, -1.0, dtype=np.float64)
        if self.sentences > 1:
            prev = np.where(self._has_prev[1:], values[:-1], -1.0)
            nxt = np.where(self._has_next[:-1], values[1:], -1.0)
            out[1:] = np.maximum(out[1:], prev)
            out[:-1] = np.maximum(out[:-1], nxt)
        return out

    def previous(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Return each sentence's predecessor's value within its paragraph (``fill`` for the first)."""
        out = np.full(self.sentences, fill, dtype=np.float64)
        if self.sentences > 1:
            out[1:] = np.where(self._has_prev[1:], values[:-1], fill)
        return out

    def next(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Return each sentence's successor's value within its paragraph (``fill`` for the last)."""
        out = np.full(self.sentences, fill, dtype=np.float64)
        if self.sentences > 1:
            out[:-1] = np.where(self._has_next[:-1], values[1:], fill)
        return out

    def matches(self, terms: list[str]) -> np.ndarray:
        """Return per sentence how many of the (distinct) ``terms`` it holds."""
        out = np.zeros(self.sentences, dtype=np.float64)
        for term in terms:
            members = self._s_index.get(term)
            if members is not None:
                out[members] += 1.0
        return out

    def chunk_max(self, chunk_cosine: np.ndarray) -> np.ndarray:
        """Return for each sentence the best cosine of a chunk that holds it."""
        out = np.full(self.sentences, -1.0, dtype=np.float64)
        if len(self._chunk_of):
            np.maximum.at(out, self._chunk_sentence, chunk_cosine[self._chunk_of].astype(np.float64))
        return out


def _incidence(docs: list[list[Any]]) -> dict[Any, np.ndarray]:
    """Return, for each token, the indices of the documents that hold it."""
    where: dict[Any, list[int]] = {}
    for number, tokens in enumerate(docs):
        for token in set(tokens):
            where.setdefault(token, []).append(number)
    return {t: np.array(v, dtype=np.int64) for t, v in where.items()}


def _share_of_max(values: np.ndarray) -> np.ndarray:
    top = float(values.max(initial=0.0))
    return values / top if top > 0 else np.zeros_like(values)


def _group_max(values: np.ndarray, groups: np.ndarray, size: int, fill: float = -1.0) -> np.ndarray:
    out = np.full(size, fill, dtype=np.float64)
    if len(values):
        np.maximum.at(out, groups, values)
    return out


@dataclass(frozen=True)
class Features:
    """The features of one question against one article.

    Attributes:
        paragraphs: ``(paragraphs, len(PARAGRAPH_FEATURES))``.
        sentences: ``(sentences, len(SENTENCE_FEATURES))``.
        question_numeric: the question asks for a number or a date.
        terms: the question's distinct content words, with ``weights`` their IDF.
    """

    paragraphs: np.ndarray
    sentences: np.ndarray
    terms: list[str]
    weights: np.ndarray
    coverage: float
    idf_coverage: float
    best_cosine: float
    sentence_idf_coverage: np.ndarray
    paragraph_idf_coverage: np.ndarray


def features(evidence: Evidence, stats: ArticleStats, question: str) -> Features:
    """Return the paragraph and sentence features of ``question`` (whose raw scores are ``evidence``)."""
    terms, weights = stats.weights(evidence.terms)
    sp = stats.sentence_paragraph
    s_cos = evidence.sentence_cosine.astype(np.float64)
    dense = evidence.paragraph_dense.astype(np.float64)
    p_cov = stats.coverage(terms, weights, sentences=False)
    s_cov = stats.coverage(terms, weights, sentences=True)
    p_bigram = stats.bigram_coverage(terms, sentences=False)
    s_bigram = stats.bigram_coverage(terms, sentences=True)
    s_bm25 = evidence.sentence_bm25.astype(np.float64)

    # Paragraph features.
    best_s = _group_max(s_cos, sp, stats.paragraphs)
    masked = s_cos.copy()
    if len(sp):
        is_best = s_cos >= best_s[sp]
        # Knock out one best sentence per paragraph (ties: all of them) to find the runner-up.
        masked[is_best] = -1.0
    second = _group_max(masked, sp, stats.paragraphs)
    second = np.where(second < -0.5, best_s, second)
    fused_sentence = s_cos + s_cov
    paragraph_matrix = np.column_stack(
        [
            dense,
            dense - dense.max(initial=0.0),
            second,
            _share_of_max(evidence.paragraph_bm25.astype(np.float64)),
            _share_of_max(_group_max(s_bm25, sp, stats.paragraphs, fill=0.0)),
            p_cov,
            p_bigram,
            _group_max(fused_sentence, sp, stats.paragraphs),
        ]
    )

    # Sentence features.
    best_bm25_in_paragraph = _group_max(s_bm25, sp, stats.paragraphs, fill=0.0)[sp] if len(sp) else s_bm25
    s_bm25_share = np.divide(
        s_bm25, best_bm25_in_paragraph, out=np.zeros_like(s_bm25), where=best_bm25_in_paragraph > 0
    )
    numeric = 1.0 if _NUMERIC_QUESTION.search(question) else 0.0
    sentence_matrix = np.column_stack(
        [
            s_cos,
            s_cos - (best_s[sp] if len(sp) else s_cos),
            stats.chunk_max(evidence.chunk_cosine),
            stats.neighbour_max(s_cos),
            s_bm25_share,
            s_cov,
            s_bigram,
            numeric * stats.sentence_digit,
            stats.sentence_first,
            stats.sentence_length,
            stats.previous(s_cos, -1.0),
            stats.previous(s_cov, 0.0),
            stats.next(s_cov, 0.0),
            np.log1p(np.maximum(stats.sentence_unique - stats.matches(terms), 0.0)),
        ]
    )
    known = [t in stats.idf for t in terms]
    total = weights.sum()
    return Features(
        paragraphs=paragraph_matrix,
        sentences=sentence_matrix,
        terms=terms,
        weights=weights,
        coverage=sum(known) / len(terms) if terms else 0.0,
        idf_coverage=float(weights[np.array(known, dtype=bool)].sum() / total) if total else 0.0,
        best_cosine=float(max(evidence.chunk_cosine.max(initial=-1.0), s_cos.max(initial=-1.0))),
        sentence_idf_coverage=s_cov,
        paragraph_idf_coverage=p_cov,
    )


def decision_features(f: Features, top_paragraph: int, top_sentence: int | None, background: Background) -> np.ndarray:
    """Return the question-level features of the "does the article answer it" decision.

    The cosines are measured against the article's ``background`` (how close
    unrelated questions come to it), so one cut-off suits narrow and broad articles.
    """
    return np.array(
        [
            background.z(f.best_cosine),
            background.z(float(f.paragraphs[top_paragraph, 0])),
            f.coverage,
            f.idf_coverage,
            f.paragraph_idf_coverage[top_paragraph],
            f.sentence_idf_coverage[top_sentence] if top_sentence is not None else 0.0,
            0.0 if f.terms else 1.0,
        ],
        dtype=np.float64,
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
    """The three fitted models."""

    paragraph: Linear
    sentence: Linear
    decision: Linear
    about: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ranker:
        return cls(
            paragraph=Linear.from_dict(data["paragraph"], PARAGRAPH_FEATURES),
            sentence=Linear.from_dict(data["sentence"], SENTENCE_FEATURES),
            decision=Linear.from_dict(data["decision"], DECISION_FEATURES),
            about=str(data.get("about", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "about": self.about,
            "paragraph": self.paragraph.to_dict(),
            "sentence": self.sentence.to_dict(),
            "decision": self.decision.to_dict(),
        }

    def probability(self, x: np.ndarray) -> float:
        """Return the decision model's probability that the article answers the question."""
        return float(1.0 / (1.0 + np.exp(-float(self.decision(x)))))


@lru_cache(maxsize=1)
def default_ranker() -> Ranker:
    """Return the shipped parameters (``index/data/ranker.json``)."""
    text = (resources.files("index") / "data" / "ranker.json").read_text(encoding="utf-8")
    return Ranker.from_dict(json.loads(text))
