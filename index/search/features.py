"""Features: what the ranker weighs, computed for one question against the candidate paragraphs.

:mod:`index.search.retrieve` gathers the raw evidence of the candidates (:class:`Evidence`): the cosine of the
question with each of their sentences and sentence windows (faiss and numpy), BM25 of each paragraph and
sentence, which question words each sentence holds. :func:`features` turns it into one row of named
features per paragraph and per sentence, and :func:`decision_features` into the question-level features of
the "does the library answer it" decision. Columns are named (:data:`PARAGRAPH_FEATURES`, ...), and the
fitted weights in ``index/data/ranker.json`` are checked against these names when they are loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from index.analysis.background import Background
from index.search.answerability import FEATURES as ANSWERABILITY_FEATURES
from index.search.rerank import ANSWER_FEATURES

#: Questions that ask for a number, a date or an amount: their answer sentence usually holds a digit.
NUMERIC_QUESTION = re.compile(
    r"\b(how (many|much|long|old|far|large|big|high|tall|often|fast)|what (year|percentage|percent|date|number"
    r"|time|age|decade|century)|which (year|century|decade)|when|in what year)\b",
    re.IGNORECASE,
)

PARAGRAPH_FEATURES = (
    "dense",  # best cosine of the paragraph's windows and sentences
    "dense_gap",  # that minus the best paragraph's
    "dense_second",  # the second-best sentence cosine of the paragraph
    "bm25_share",  # BM25 over the best paragraph's
    "sentence_bm25_share",  # the paragraph's best sentence BM25 over the best sentence's
    "idf_coverage",  # share of the question's IDF mass found in the paragraph
    "bigram_coverage",  # share of the question's word pairs found in the paragraph
    "sentence_best",  # the best sentence's fused evidence (cosine + its IDF coverage)
)
SENTENCE_FEATURES = (
    "cosine",  # the sentence's cosine with the question
    "cosine_gap",  # minus the paragraph's best sentence cosine
    "chunk_cosine",  # best cosine of a window holding it
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
    "best_cosine_z",  # best cosine of any sentence or window, in background deviations (index.analysis.background)
    "top_dense_z",  # the first paragraph's dense evidence, likewise
    "coverage",  # share of the question's content words found in the collection searched
    "idf_coverage",  # share of the question's IDF mass found there
    "top_idf_coverage",  # share found in the first paragraph
    "top_sentence_idf_coverage",  # share found in the marked sentence
    "no_terms",  # the question has no content word at all
    *ANSWERABILITY_FEATURES,  # can the marked sentence answer it (index.search.answerability.signals), by name
    *ANSWER_FEATURES,  # what the answer-sentence model makes of it (index.search.rerank)
)


@dataclass(frozen=True)
class Evidence:
    """The raw evidence of one question against the candidate paragraphs and their sentences.

    Sentences are grouped by paragraph, in order; ``sentence_paragraph`` gives each one's candidate
    paragraph (0 to ``paragraphs - 1``, non-decreasing).

    Attributes:
        paragraphs: how many candidate paragraphs.
        sentence_paragraph: per sentence, its candidate paragraph.
        sentence_cosine: per sentence, its cosine with the question.
        chunk_cosine: per window, its cosine with the question.
        chunk_first: per window, its first sentence (candidate-wide numbering).
        chunk_last: per window, one past its last sentence.
        paragraph_bm25: per paragraph, its BM25 score in the collection searched.
        sentence_bm25: per sentence, its BM25 score with sentences as the documents.
        presence: ``(sentences, terms)``: whether the sentence holds each distinct question term.
        sentence_bigrams: ``(sentences,)`` how many of the question's word pairs the sentence holds.
        paragraph_bigrams: ``(paragraphs,)`` the same per paragraph.
        pairs: how many word pairs the question has.
        sentence_digit: per sentence, whether it holds a digit.
        sentence_words: per sentence, its length in words.
        sentence_unique: per sentence, how many distinct content words it has.
        weights: the IDF of each distinct question term in the collection searched.
        known: whether each distinct question term occurs in the collection searched.
    """

    paragraphs: int
    sentence_paragraph: np.ndarray
    sentence_cosine: np.ndarray
    chunk_cosine: np.ndarray
    chunk_first: np.ndarray
    chunk_last: np.ndarray
    paragraph_bm25: np.ndarray
    sentence_bm25: np.ndarray
    presence: np.ndarray
    sentence_bigrams: np.ndarray
    paragraph_bigrams: np.ndarray
    pairs: int
    sentence_digit: np.ndarray
    sentence_words: np.ndarray
    sentence_unique: np.ndarray
    weights: np.ndarray
    known: np.ndarray


@dataclass(frozen=True)
class Features:
    """The named features of one question against the candidates.

    Attributes:
        paragraphs: ``(paragraphs, len(PARAGRAPH_FEATURES))``.
        sentences: ``(sentences, len(SENTENCE_FEATURES))``.
        coverage: share of the question's distinct terms found in the collection.
        idf_coverage: share of their IDF mass found there.
        best_cosine: the best cosine of any candidate sentence or window.
        sentence_idf_coverage: per sentence, the share of the question's IDF mass it holds.
        paragraph_idf_coverage: per paragraph, likewise.
        has_terms: whether the question has any content word.
    """

    paragraphs: np.ndarray
    sentences: np.ndarray
    coverage: float
    idf_coverage: float
    best_cosine: float
    sentence_idf_coverage: np.ndarray
    paragraph_idf_coverage: np.ndarray
    has_terms: bool

    def paragraph(self, name: str) -> np.ndarray:
        """Return the paragraph feature column ``name`` (one of :data:`PARAGRAPH_FEATURES`)."""
        return self.paragraphs[:, PARAGRAPH_FEATURES.index(name)]


def group_max(values: np.ndarray, groups: np.ndarray, size: int, fill: float = -1.0) -> np.ndarray:
    """Return per group (0 to ``size - 1``) the largest of ``values`` (``fill`` for an empty group)."""
    out = np.full(size, fill, dtype=np.float64)
    if len(values):
        np.maximum.at(out, groups, values)
    return out


def _share_of_max(values: np.ndarray) -> np.ndarray:
    top = float(values.max(initial=0.0))
    return values / top if top > 0 else np.zeros_like(values)


def features(ev: Evidence, question: str) -> Features:
    """Return the paragraph and sentence features of ``question`` from the candidates' evidence ``ev``."""
    sp = ev.sentence_paragraph
    n_sentences = len(sp)
    m = ev.paragraphs
    total = float(ev.weights.sum())
    presence = ev.presence.astype(np.float64)
    s_cov = presence @ ev.weights / total if total else np.zeros(n_sentences)
    p_presence = np.zeros((m, presence.shape[1]))
    if n_sentences and presence.shape[1]:
        np.maximum.at(p_presence, sp, presence)
    p_cov = p_presence @ ev.weights / total if total else np.zeros(m)
    s_bigram = ev.sentence_bigrams / ev.pairs if ev.pairs else np.zeros(n_sentences)
    p_bigram = ev.paragraph_bigrams / ev.pairs if ev.pairs else np.zeros(m)
    s_cos = ev.sentence_cosine.astype(np.float64)
    s_bm25 = ev.sentence_bm25.astype(np.float64)

    # Windows: each sentence's best window, each paragraph's best window.
    chunk_best = np.full(n_sentences, -1.0)
    if len(ev.chunk_cosine):
        sizes = ev.chunk_last - ev.chunk_first
        starts = np.repeat(ev.chunk_first, sizes)
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        np.maximum.at(chunk_best, starts + offsets, np.repeat(ev.chunk_cosine.astype(np.float64), sizes))
    chunk_paragraph = sp[ev.chunk_first] if len(ev.chunk_first) else np.zeros(0, dtype=np.int64)
    dense = np.maximum(group_max(s_cos, sp, m), group_max(ev.chunk_cosine.astype(np.float64), chunk_paragraph, m))

    first = np.ones(n_sentences, dtype=bool)
    last = np.ones(n_sentences, dtype=bool)
    if n_sentences:
        first[1:] = sp[1:] != sp[:-1]
        last[:-1] = sp[:-1] != sp[1:]
    has_prev, has_next = ~first, ~last

    def previous(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(n_sentences, fill, dtype=np.float64)
        if n_sentences > 1:
            out[1:] = np.where(has_prev[1:], values[:-1], fill)
        return out

    def following(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(n_sentences, fill, dtype=np.float64)
        if n_sentences > 1:
            out[:-1] = np.where(has_next[:-1], values[1:], fill)
        return out

    best_s = group_max(s_cos, sp, m)
    masked = s_cos.copy()
    if n_sentences:
        masked[s_cos >= best_s[sp]] = -1.0  # knock out the best sentence(s) to find the runner-up
    second = group_max(masked, sp, m)
    second = np.where(second < -0.5, best_s, second)
    best_bm25 = group_max(s_bm25, sp, m, fill=0.0)
    paragraph_matrix = np.column_stack(
        [
            dense,
            dense - dense.max(initial=0.0),
            second,
            _share_of_max(ev.paragraph_bm25.astype(np.float64)),
            _share_of_max(best_bm25),
            p_cov,
            p_bigram,
            group_max(s_cos + s_cov, sp, m),
        ]
    ).reshape(m, len(PARAGRAPH_FEATURES))

    best_bm25_here = best_bm25[sp] if n_sentences else s_bm25
    s_bm25_share = np.divide(s_bm25, best_bm25_here, out=np.zeros_like(s_bm25), where=best_bm25_here > 0)
    numeric = 1.0 if NUMERIC_QUESTION.search(question) else 0.0
    neighbour = np.maximum(previous(s_cos, -1.0), following(s_cos, -1.0))
    matches = presence.sum(axis=1) if presence.shape[1] else np.zeros(n_sentences)
    sentence_matrix = np.column_stack(
        [
            s_cos,
            s_cos - (best_s[sp] if n_sentences else s_cos),
            chunk_best,
            neighbour,
            s_bm25_share,
            s_cov,
            s_bigram,
            numeric * ev.sentence_digit,
            first.astype(np.float64),
            np.log1p(ev.sentence_words.astype(np.float64)),
            previous(s_cos, -1.0),
            previous(s_cov, 0.0),
            following(s_cov, 0.0),
            np.log1p(np.maximum(ev.sentence_unique - matches, 0.0)),
        ]
    ).reshape(n_sentences, len(SENTENCE_FEATURES))
    terms = len(ev.weights)
    return Features(
        paragraphs=paragraph_matrix,
        sentences=sentence_matrix,
        coverage=float(ev.known.sum() / terms) if terms else 0.0,
        idf_coverage=float(ev.weights[ev.known].sum() / total) if total else 0.0,
        best_cosine=float(max(ev.chunk_cosine.max(initial=-1.0), s_cos.max(initial=-1.0))),
        sentence_idf_coverage=s_cov,
        paragraph_idf_coverage=p_cov,
        has_terms=bool(terms),
    )


def decision_features(
    f: Features,
    top_paragraph: int,
    top_sentence: int | None,
    background: Background,
    signals: Mapping[str, float],
    answer: tuple[float, float],
) -> np.ndarray:
    """Return the question-level features of the "does the collection answer it" decision.

    The cosines are measured against the top paragraph's article's ``background`` (how close unrelated
    questions come to it), so one cut-off suits narrow and broad articles; ``signals`` are
    :func:`index.search.answerability.signals` of the marked sentence, taken by name; ``answer`` the
    answer-sentence model's :data:`index.search.rerank.ANSWER_FEATURES`.
    """
    return np.array(
        [
            background.z(f.best_cosine),
            background.z(float(f.paragraph("dense")[top_paragraph])),
            f.coverage,
            f.idf_coverage,
            f.paragraph_idf_coverage[top_paragraph],
            f.sentence_idf_coverage[top_sentence] if top_sentence is not None else 0.0,
            0.0 if f.has_terms else 1.0,
            *(float(signals[name]) for name in ANSWERABILITY_FEATURES),
            *answer,
        ],
        dtype=np.float64,
    )
