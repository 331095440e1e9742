"""Follow-ups by reply: the rule that reads a short or elliptical question with the one it replies to,
checked on its own and with real questions on the bundled article (the real model and library)."""

from __future__ import annotations

import pytest

from bot.telegram.followup import content_words, expand_follow_up, is_elliptical
from index.answer import answer
from index.search.retrieve import Searcher


def test_content_words_drop_question_words_stop_words_and_pronouns() -> None:
    assert content_words("Which two roads meet at Saraqeb?") == ["two", "roads", "meet", "Saraqeb"]
    assert content_words("And what did it say about them?") == []


@pytest.mark.parametrize(
    ("question", "elliptical"),
    [
        ("and who controls it?", True),
        ("What about Russia?", True),
        ("since when?", True),
        ("Is it true?", True),
        ("Who denied the claim?", False),  # a whole question: asked as it is
        ("How many people have fled their homes since December?", False),  # a pronoun, but long
        ("What did Turkey's foreign minister say about the talks?", False),
    ],
)
def test_which_questions_lean_on_the_earlier_one(question: str, elliptical: bool) -> None:
    assert is_elliptical(question) is elliptical


def test_only_the_missing_content_words_are_added_once() -> None:
    earlier = "Which two roads meet at Saraqeb?"
    assert expand_follow_up("and who controls it?", earlier) == "and who controls it? two roads meet Saraqeb"
    assert expand_follow_up("and the roads?", earlier) == "and the roads? two meet Saraqeb"
    assert expand_follow_up("and what about the swimming pool?", earlier) == "and what about the swimming pool?"
    assert expand_follow_up("Who denied the claim?", earlier) == "Who denied the claim?"
    assert expand_follow_up("and who?", "") == "and who?"


@pytest.mark.parametrize(
    ("earlier", "follow_up", "paragraph", "words"),
    [
        ("Which two roads meet at Saraqeb?", "and who controls it?", 9, "M4 and M5"),
        ("How many people have fled their homes?", "since when?", 17, "displacement"),
        ("Who denied the claim?", "and who made it?", 6, "Ankara has denied the claim"),
        ("What did Turkey's foreign minister say about the talks?", "what about Russia?", 13, "Moscow"),
    ],
)
def test_follow_ups_on_the_bundled_article_are_answered_from_the_right_paragraph(
    seed_searcher: Searcher, earlier: str, follow_up: str, paragraph: int, words: str
) -> None:
    result = answer(seed_searcher, expand_follow_up(follow_up, earlier), k=1)
    assert result.found and result.passages[0].paragraph == paragraph
    assert words in result.passages[0].text


def test_alone_the_elliptical_follow_ups_are_not_understood(seed_searcher: Searcher) -> None:
    """What the rule is for: without the earlier question these find nothing, or the wrong paragraph."""
    for follow_up, paragraph in (("and who controls it?", 9), ("since when?", 17)):
        result = answer(seed_searcher, follow_up, k=1)
        assert not result.found or result.passages[0].paragraph != paragraph
