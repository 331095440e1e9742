"""Words: the stemmed, lower-cased content words of a text, the unit of every lexical match."""

from __future__ import annotations

import re
from functools import lru_cache

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
#: Lucene's English stop words (the list bm25s uses), so citebot's BM25 tokenises as bm25s does.
STOPWORDS_EN = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
STOPWORDS = STOPWORDS_EN | _QUESTION_WORDS


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no type information
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Return the stemmed, lower-cased content words of ``text``."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words)) if words else []
