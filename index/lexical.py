"""Lexical matching: BM25 (bm25s) over stemmed words, stop words and question words removed."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"\w\w+|\d")
#: Words that say what is asked, not what about: they carry no evidence.
_QUESTION_WORDS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "does",
        "did",
        "do",
        "done",
        "doing",
        "is",
        "was",
        "were",
        "are",
        "am",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
        "having",
        "can",
        "could",
        "would",
        "should",
        "shall",
        "will",
        "may",
        "might",
        "must",
        "about",
        "according",
        "article",
        "story",
        "text",
        "tell",
        "me",
        "us",
        "you",
        "your",
        "i",
        "we",
        "our",
        "it",
        "its",
        "there",
        "their",
        "they",
        "them",
        "this",
        "that",
        "these",
        "those",
        "from",
        "into",
        "onto",
        "than",
        "then",
        "so",
        "also",
        "any",
        "some",
        "much",
        "many",
    ]
)
STOPWORDS = frozenset(STOPWORDS_EN) | _QUESTION_WORDS

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no type information
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Return the stemmed, lower-cased content words of ``text``."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words)) if words else []


class BM25Index:
    """Okapi BM25 scores of a query against a fixed list of texts."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        self.tokens = [tokenize(t) for t in texts]
        self.vocabulary = {token for doc in self.tokens for token in doc}
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        # bm25s needs one non-empty document; an empty text gets a token no query can contain.
        self._bm25.index([doc or ["\0"] for doc in self.tokens] or [["\0"]], show_progress=False)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """Return one BM25 score per text (zeros when no query word occurs)."""
        known = [t for t in query_tokens if t in self.vocabulary]
        if not known or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)[: self.size]
