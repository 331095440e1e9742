"""Telegram HTML: escaping, an answer's quote and place, context, inline results, questions and entities."""

from __future__ import annotations

import pytest

from bot.telegram.html import (
    answer_html,
    article_html,
    context_html,
    entity_text,
    inline_html,
    passage_html,
    question_text,
    quote_html,
)
from bot.telegram.split import MAX_MESSAGE, utf16_len
from index.answer import ArticleRef
from index.reading.article import article_from_paragraphs
from tests.support.fake_telegram import ApiError, parse_html
from tests.support.telegram_text import bold_texts, flat, make_passage, sentences

NASTY = "Tom & Jerry said <b>hi</b> & <script>x</script>, a<b, \"quoted\" 'single' &amp; &lt;done&gt; 😀."


def test_quote_escapes_everything_and_bolds_the_sentence() -> None:
    start = NASTY.index("<script>")
    end = NASTY.index("quoted") - 2
    markup = quote_html(NASTY, ((start, end),))
    assert parse_html(markup) == NASTY  # Telegram accepts it and shows the text exactly
    assert bold_texts(markup) == [NASTY[start:end]]
    assert markup.startswith("<blockquote>") and markup.endswith("</blockquote>")


def test_passage_names_its_article_and_position_after_the_quote() -> None:
    markup = passage_html(make_passage("One. Two.", ((5, 9),)))
    assert parse_html(markup) == "One. Two.\n“Harbour news”, paragraph 4 of 21"
    assert markup.endswith("\n“Harbour news”, <i>paragraph 4 of 21</i>")
    assert parse_html(passage_html(make_passage("One."), rank=2)).endswith("paragraph 4 of 21 · match 3")
    pdf = parse_html(passage_html(make_passage("One.", page=3)))
    assert pdf.endswith("paragraph 4 of 21, page 3")


def test_an_article_with_a_url_is_a_link_and_its_date_is_shown() -> None:
    ref = ArticleRef(
        2,
        'Ports & "quays" <today>',
        "https://news.example/a?x=1&y=2",
        "2 May 2024",
        url='https://news.example/a?x=1&y="2"',
    )
    markup = article_html(ref)
    assert markup == (
        '<a href="https://news.example/a?x=1&amp;y=&quot;2&quot;">“Ports &amp; &quot;quays&quot; &lt;today&gt;”</a>'
        " (2 May 2024)"
    )
    assert parse_html(markup) == '“Ports & "quays" <today>” (2 May 2024)'
    unsafe = ArticleRef(2, "T", "x", url="javascript:alert(1)")
    assert "<a" not in article_html(unsafe)  # only web addresses become links


def test_answer_found_nearest_and_not_found() -> None:
    passage = make_passage("The tower is repainted every seven years.", ((0, 41),))
    assert parse_html(answer_html(passage, found=True)).startswith("The tower")
    nearest = parse_html(answer_html(passage, found=False))
    assert nearest.startswith("The article does not answer that. The nearest I found:\nThe tower")
    assert parse_html(answer_html(None, found=False)) == "The article does not answer that."


def test_context_shows_neighbours_with_positions() -> None:
    article = article_from_paragraphs(["First <one>.", "Second & two.", "Third three.", "Fourth."])
    middle = parse_html(context_html(article, 2, ((0, 6),)))
    assert (
        middle == "First <one>.\nparagraph 1 of 4\n\nSecond & two.\nparagraph 2 of 4\n\nThird three.\nparagraph 3 of 4"
    )
    assert bold_texts(context_html(article, 2, ((0, 6),))) == ["Second"]
    assert parse_html(context_html(article, 1)).count("paragraph") == 2  # no paragraph 0
    assert parse_html(context_html(article, 4)).count("paragraph") == 2  # no paragraph 5


def test_inline_result_fits_one_message_and_keeps_the_answer() -> None:
    text = sentences(400, 3)
    start = text.index(". ", len(text) * 3 // 4) + 2
    end = text.index(".", start) + 1
    markup = inline_html(make_passage(text, ((start, end),)))
    assert utf16_len(markup) <= MAX_MESSAGE
    assert flat(bold_texts(markup)[0]) == flat(text[start:end])
    assert parse_html(markup).endswith("paragraph 4 of 21")


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Which roads meet?", "Which roads meet?"),
        ("/ask Which roads meet?", "Which roads meet?"),
        ("/ask@CiteTestBot   Which  roads meet?", "Which roads meet?"),
        ("@citetestbot which roads meet?", "which roads meet?"),
        ("Hey @CiteTestBot, which roads meet?", "Hey , which roads meet?"),
        ("/ask", ""),
        ("/asking is fun", "/asking is fun"),
        ("@CiteTestBotter hi", "@CiteTestBotter hi"),
    ],
)
def test_question_text(text: str, question: str) -> None:
    assert question_text(text, "CiteTestBot") == question


def test_entity_text_reads_utf16_offsets_and_refuses_a_cut_surrogate_pair() -> None:
    text = "😀 @CiteTestBot hi"
    assert entity_text(text, 3, 12) == "@CiteTestBot"  # the emoji is two UTF-16 units
    assert entity_text(text, 1, 12) is None  # starts inside the emoji
    assert entity_text(text, 0, 1) is None  # ends inside it
    assert entity_text(text, 10, 50) is None and entity_text(text, -1, 2) is None


def test_the_fake_server_refuses_what_telegram_refuses() -> None:
    for bad, reason in [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<script>", 'Unsupported start tag "script" at byte offset 0'),
    ]:
        with pytest.raises(ApiError, match="can't parse entities") as info:
            parse_html(bad)
        assert reason in info.value.description
