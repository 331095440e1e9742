"""Sentences and their windows: exact spans, windows that never cross a paragraph."""

from __future__ import annotations

import pytest

from index.analysis.sentences import sentence_spans, sentence_windows, split_sentences
from index.reading.article import Article, article_from_paragraphs


def test_sentence_spans_are_exact_and_cover_the_text() -> None:
    text = 'Dr. Smith arrived at 3 p.m. on Monday. "Where is it?" he asked. The U.S. team left.'
    spans = sentence_spans(text)
    sentences = [text[s:e] for s, e in spans]
    assert sentences == ["Dr. Smith arrived at 3 p.m. on Monday.", '"Where is it?" he asked.', "The U.S. team left."]
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")


def test_seed_sentences_lie_inside_their_paragraphs(seed: Article) -> None:
    sentences = split_sentences(seed)
    assert len(sentences) > len(seed.paragraphs)
    for s in sentences:
        p_start, p_end = seed.paragraphs[s.paragraph]
        assert p_start <= s.start < s.end <= p_end
        assert seed.text[s.start : s.end].strip() == seed.text[s.start : s.end]


@pytest.mark.parametrize("window", [1, 2, 3])
def test_windows_are_sentence_ranges_inside_one_paragraph(window: int) -> None:
    article = article_from_paragraphs(["One. Two. Three. Four.", "Five.", "Six. Seven."], source="t.txt")
    sentences = split_sentences(article)
    paragraph_of = [s.paragraph for s in sentences]
    windows = sentence_windows(paragraph_of, window)
    for first, last in windows:
        assert len({paragraph_of[i] for i in range(first, last)}) == 1
        assert 0 < last - first <= window
    covered = {i for first, last in windows for i in range(first, last)}
    assert covered == set(range(len(sentences)))  # every sentence is in some window
    per_paragraph = [sum(paragraph_of[first] == p for first, _ in windows) for p in range(3)]
    assert per_paragraph == [max(1, 4 - window + 1), 1, max(1, 2 - window + 1)]


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        sentence_windows([], 0)
