"""Sentences: found by pysbd with exact spans, and grouped into windows that never cross a paragraph."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from index.errors import Stopped

if TYPE_CHECKING:
    import numpy as np
    import pysbd

    from index.reading.article import Article


@dataclass(frozen=True)
class Sentence:
    """One sentence: its paragraph (0-based) and ``[start, end)`` span in the article text."""

    paragraph: int
    start: int
    end: int


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


#: pysbd's time grows faster than linearly with the length of text without sentence ends, so text is handed
#: to it in blocks of at most this many characters, cut where a sentence seems to end (else at a space).
BLOCK_CHARS = 3000
#: A longer "sentence" (a run without punctuation) is cut at word boundaries into pieces of at most this size.
MAX_SENTENCE_CHARS = 600
#: Asked to check whether to stop, splitting asks before every this many paragraphs.
STOP_CHECK_PARAGRAPHS = 64
_BLOCK_END = re.compile(r"[.!?…][\"'”’)\]]*\s+")


def _blocks(text: str, limit: int = BLOCK_CHARS) -> list[tuple[int, int]]:
    """Return ``(start, end)`` spans covering ``text`` in pieces of at most ``limit`` characters.

    A piece ends after the last sentence end in it, else at its last space, else at ``limit``.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        cut = 0
        for match in _BLOCK_END.finditer(window, limit // 2):
            cut = match.end()
        if not cut:
            space = window.rfind(" ", limit // 2)
            cut = space + 1 if space > 0 else limit
        spans.append((start, start + cut))
        start += cut
    spans.append((start, len(text)))
    return spans


def _bounded(start: int, end: int, text: str, limit: int = MAX_SENTENCE_CHARS) -> list[tuple[int, int]]:
    """Return the span ``[start, end)`` of ``text`` cut at spaces into pieces of at most ``limit`` characters."""
    pieces: list[tuple[int, int]] = []
    while end - start > limit:
        space = text.rfind(" ", start + limit // 2, start + limit)
        cut = space if space > start else start + limit
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def _pysbd_spans(text: str) -> list[tuple[int, int]]:
    """Return pysbd's sentence spans of ``text`` (one block), whitespace trimmed, located exactly in ``text``."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for segment in _segmenter().segment(text):
        piece = segment.strip()
        if not piece:
            continue
        start = text.find(piece, cursor)
        if start < 0:  # pysbd altered the text; fall back to the rest as one sentence
            rest = text[cursor:].strip()
            if rest:
                begin = text.index(rest, cursor)
                spans.append((begin, begin + len(rest)))
            return spans
        spans.append((start, start + len(piece)))
        cursor = start + len(piece)
    tail = text[cursor:].strip()
    if tail:
        begin = text.index(tail, cursor)
        spans.append((begin, begin + len(tail)))
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` spans of the sentences of ``text``, whitespace trimmed.

    Spans are exact and in order; nothing of ``text`` but whitespace falls
    outside them. Long text is split in blocks (:data:`BLOCK_CHARS`) so the time
    stays linear, and no sentence is longer than :data:`MAX_SENTENCE_CHARS`.
    """
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        for start, end in _pysbd_spans(text[block_start:block_end]):
            spans.extend(_bounded(block_start + start, block_start + end, text))
    return spans


def split_sentences(article: Article, should_stop: Callable[[], bool] | None = None) -> list[Sentence]:
    """Return every sentence of ``article``, paragraph by paragraph, with spans in its text.

    Raises:
        Stopped: when ``should_stop()`` says so, asked every :data:`STOP_CHECK_PARAGRAPHS` paragraphs.
    """
    sentences: list[Sentence] = []
    for number, (p_start, p_end) in enumerate(article.paragraphs):
        if should_stop is not None and number % STOP_CHECK_PARAGRAPHS == 0 and should_stop():
            raise Stopped("stopped while splitting sentences")
        for start, end in sentence_spans(article.text[p_start:p_end]):
            sentences.append(Sentence(number, p_start + start, p_start + end))
    return sentences


def sentence_windows(sentence_paragraph: Sequence[int] | np.ndarray, window: int) -> list[tuple[int, int]]:
    """Return the ``(first, last)`` sentence ranges (``last`` exclusive) of windows of ``window`` sentences.

    ``sentence_paragraph[i]`` is the paragraph of sentence ``i`` (sentences in order). Windows have stride
    one and never cross a paragraph; a paragraph of at most ``window`` sentences is one window.

    Raises:
        ValueError: when ``window`` is less than 1.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    out: list[tuple[int, int]] = []
    n = len(sentence_paragraph)
    i = 0
    while i < n:
        j = i
        while j < n and sentence_paragraph[j] == sentence_paragraph[i]:
            j += 1
        for first in range(i, max(i + 1, j - window + 1)):
            out.append((first, min(first + window, j)))
        i = j
    return out
