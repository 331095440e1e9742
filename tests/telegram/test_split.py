"""Splitting Telegram HTML to 4096 characters: on paragraphs and sentences, never in a tag or an entity."""

from __future__ import annotations

import pytest

from bot.telegram.html import passage_html
from bot.telegram.split import MAX_MESSAGE, split_html, utf16_len
from tests.support.fake_telegram import parse_html
from tests.support.telegram_text import bold_texts, flat, make_passage, sentences


def test_a_short_message_is_one_part() -> None:
    assert split_html("<b>hi</b>") == ["<b>hi</b>"]
    assert split_html("  \n ") == []


@pytest.mark.parametrize("seed", range(6))
def test_long_quotes_split_on_sentences_into_valid_parts(seed: int) -> None:
    text = sentences(300, seed)
    start = text.index(". ", len(text) // 2) + 2
    end = text.index(".", start) + 1
    markup = passage_html(make_passage(text, ((start, end),)))
    parts = split_html(markup)
    assert len(parts) >= 3
    shown = []
    for part in parts:
        assert utf16_len(part) <= MAX_MESSAGE
        visible = parse_html(part)  # well-formed on its own: tags closed, never cut in a tag or an entity
        assert visible.strip()
        shown.append(visible)
    for visible in shown[:-1]:
        assert visible.rstrip().endswith(".")  # cut at a sentence end
    assert flat(" ".join(shown)) == flat(f"{text}\n“Harbour news”, paragraph 4 of 21")
    bold = [b for part in parts for b in bold_texts(part)]
    assert flat(" ".join(bold)) == flat(text[start:end])
    assert parts[-1].endswith("<i>paragraph 4 of 21</i>")


def test_split_prefers_a_blank_line_then_a_line_break() -> None:
    blocks = [f"<blockquote>{'word ' * 150}end.</blockquote>\n<i>paragraph {n} of 9</i>" for n in range(1, 9)]
    parts = split_html("\n\n".join(blocks), limit=2000)
    for part in parts:
        assert part.startswith("<blockquote>") and part.endswith("of 9</i>")  # whole paragraphs with their place
        parse_html(part)


def test_a_word_longer_than_a_message_is_cut_anywhere_but_in_an_entity() -> None:
    markup = "<b>" + "&amp;" * 3000 + "</b>"
    parts = split_html(markup, limit=500)
    assert all(utf16_len(p) <= 500 and p.startswith("<b>") and p.endswith("</b>") for p in parts)
    assert "".join(parse_html(p) for p in parts) == "&" * 3000


def test_utf16_counts_like_telegram() -> None:
    assert utf16_len("😀a") == 3
    parts = split_html("😀" * 5000, limit=MAX_MESSAGE)
    assert all(utf16_len(p) <= MAX_MESSAGE for p in parts) and sum(len(p) for p in parts) == 5000


def test_nesting_too_deep_for_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="nest"):
        split_html("<b><i><u>" + "x" * 100 + "</u></i></b>", limit=20)
