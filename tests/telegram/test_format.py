"""Telegram formatting: escaping, splitting to 4096 characters, button data, questions from messages."""

from __future__ import annotations

import random
import re

import pytest

from bot.telegram.format import (
    ARTICLES_PER_PAGE,
    MAX_CALLBACK_DATA,
    MAX_MESSAGE,
    Button,
    LibraryButton,
    answer_buttons,
    answer_html,
    article_html,
    articles_page,
    closest_buttons,
    context_html,
    decode_button,
    decode_library_button,
    entity_text,
    example_candidates,
    greeting_html,
    inline_html,
    passage_html,
    question_text,
    quote_html,
    scope_html,
    source_html,
    split_html,
    utf16_len,
)
from index.answer import MAX_K, ArticleRef, Passage
from index.reading.article import article_from_paragraphs
from index.store.catalog import ArticleRecord
from tests.support.fake_telegram import ApiError, parse_html

NASTY = "Tom & Jerry said <b>hi</b> & <script>x</script>, a<b, \"quoted\" 'single' &amp; &lt;done&gt; 😀."


REF = ArticleRef(7, "Harbour news", "/srv/harbour.txt", fingerprint="0123abcd" + "0" * 56)
FP = "0123abcd"


def _passage(
    text: str,
    highlight: tuple[tuple[int, int], ...] = (),
    paragraph: int = 4,
    paragraphs: int = 21,
    article: ArticleRef = REF,
    page: int | None = None,
) -> Passage:
    return Passage(text, paragraph, paragraphs, 0.9, highlight, 0, len(text), article, page)


def _record(id: int = 3, title: str = "R&D <weekly>", **changes: object) -> ArticleRecord:
    fields: dict = dict(
        id=id,
        key=id,
        source="/srv/a/r&d.txt",
        fingerprint="f" * 64,
        title=title,
        date=None,
        url=None,
        site=None,
        author=None,
        kind="text",
        paragraphs=1,
        sentences=1,
        words=4,
        chars=20,
        added_at="2026-11-26T10:00:00Z",
        fetched_at=None,
        etag=None,
        last_modified=None,
        feed=None,
        vectors_sha256="0" * 64,
        background_mean=0.0,
        background_std=0.0,
    )
    fields.update(changes)
    return ArticleRecord(**fields)


def _bold(markup: str) -> list[str]:
    return [parse_html(m) for m in re.findall(r"<b>(.*?)</b>", markup, re.DOTALL)]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_quote_escapes_everything_and_bolds_the_sentence() -> None:
    start = NASTY.index("<script>")
    end = NASTY.index("quoted") - 2
    markup = quote_html(NASTY, ((start, end),))
    assert parse_html(markup) == NASTY  # Telegram accepts it and shows the text exactly
    assert _bold(markup) == [NASTY[start:end]]
    assert markup.startswith("<blockquote>") and markup.endswith("</blockquote>")


def test_passage_names_its_article_and_position_after_the_quote() -> None:
    markup = passage_html(_passage("One. Two.", ((5, 9),)))
    assert parse_html(markup) == "One. Two.\n“Harbour news”, paragraph 4 of 21"
    assert markup.endswith("\n“Harbour news”, <i>paragraph 4 of 21</i>")
    assert parse_html(passage_html(_passage("One."), rank=2)).endswith("paragraph 4 of 21 · match 3")
    pdf = parse_html(passage_html(_passage("One.", page=3)))
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
    passage = _passage("The tower is repainted every seven years.", ((0, 41),))
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
    assert _bold(context_html(article, 2, ((0, 6),))) == ["Second"]
    assert parse_html(context_html(article, 1)).count("paragraph") == 2  # no paragraph 0
    assert parse_html(context_html(article, 4)).count("paragraph") == 2  # no paragraph 5


def test_a_short_message_is_one_part() -> None:
    assert split_html("<b>hi</b>") == ["<b>hi</b>"]
    assert split_html("  \n ") == []


def _sentences(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "R&D", "x<y", "gamma", '"delta"', "eps's", "😀", "zeta"]
    return " ".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))).capitalize() + "." for _ in range(count)
    )


@pytest.mark.parametrize("seed", range(6))
def test_long_quotes_split_on_sentences_into_valid_parts(seed: int) -> None:
    text = _sentences(300, seed)
    start = text.index(". ", len(text) // 2) + 2
    end = text.index(".", start) + 1
    markup = passage_html(_passage(text, ((start, end),)))
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
    assert _flat(" ".join(shown)) == _flat(f"{text}\n“Harbour news”, paragraph 4 of 21")
    bold = [b for part in parts for b in _bold(part)]
    assert _flat(" ".join(bold)) == _flat(text[start:end])
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


def test_inline_result_fits_one_message_and_keeps_the_answer() -> None:
    text = _sentences(400, 3)
    start = text.index(". ", len(text) * 3 // 4) + 2
    end = text.index(".", start) + 1
    markup = inline_html(_passage(text, ((start, end),)))
    assert utf16_len(markup) <= MAX_MESSAGE
    assert _flat(_bold(markup)[0]) == _flat(text[start:end])
    assert parse_html(markup).endswith("paragraph 4 of 21")


def test_buttons_round_trip_and_fit_telegram() -> None:
    for button in (
        Button("next", 999_999_999, "0123abcd", rank=MAX_K - 1),
        Button("context", 999_999_999, "0123abcd", paragraph=999_999_999, start=999_999_998, end=999_999_999),
        Button("closest", 1, "0123abcd", paragraph=3, start=0, end=0),
    ):
        data = button.encode()
        assert len(data.encode()) <= MAX_CALLBACK_DATA
        assert decode_button(data) == button


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "zz",
        "n:0123abcd:1",
        "n:1:0123abcd",
        "n:1:0123abcd:1:2",
        "c:1:0123abcd:1",
        "q:1:0123abcd:1",
        "n:1:XYZ:1",
        "n:x:0123abcd:1",
        "c:-1:0123abcd:1:0:0",
        "u:1",
        "p:0",
    ],
)
def test_unknown_button_data_is_not_ours(data: str | None) -> None:
    assert decode_button(data) is None


def test_answer_buttons() -> None:
    passage = _passage("Text.", ((0, 5),), paragraph=3, paragraphs=5)
    labels = dict(answer_buttons(passage))
    assert set(labels) == {"More context", "Next match"}
    assert decode_button(labels["Next match"]) == Button("next", 7, FP, rank=1)
    assert decode_button(labels["More context"]) == Button("context", 7, FP, paragraph=3, start=0, end=5)
    assert [label for label, _ in answer_buttons(passage, rank=MAX_K - 1)] == ["More context"]  # nothing after
    assert [label for label, _ in closest_buttons(passage)] == ["Show closest passage"]
    assert closest_buttons(None) == []


def test_library_buttons_round_trip() -> None:
    for button in (LibraryButton("use", 0), LibraryButton("use", 999_999_999), LibraryButton("page", 3)):
        assert decode_library_button(button.encode()) == button
    for data in ("u:", "u:x", "p:-1", "u:1:2", "n:1:0123abcd:1", None):
        assert decode_library_button(data) is None


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


def test_example_candidates_name_what_the_article_mentions_most() -> None:
    article = article_from_paragraphs(
        [
            "Harbour news",
            "Boats left Port Ellis at dawn. The Turkish ferry waited at Port Ellis.",
            "Later, crews from Port Ellis and Dunmore met. Dunmore won.",
        ]
    )
    assert example_candidates(article)[:2] == [
        "What does the article say about Port Ellis?",
        "What does the article say about Dunmore?",
    ]


def test_greeting_and_source_escape_the_title() -> None:
    record = _record()
    greeting = parse_html(greeting_html([record], ["Who <won>?"]))
    assert "“R&D <weekly>”" in greeting and "• Who <won>?" in greeting
    assert "the 2 articles of my library" in parse_html(greeting_html([record, _record(4)], []))
    source = parse_html(source_html(record))
    assert source == "R&D <weekly>\n1 paragraph, 4 words\nFrom: r&d.txt"


def test_articles_are_listed_a_page_at_a_time_and_the_scope_is_marked() -> None:
    records = [_record(n, f"Story <{n}>", date="1 May", url=f"https://x.example/{n}") for n in range(1, 20)]
    text, page = articles_page(records, 1, scope=(ARTICLES_PER_PAGE + 2,))
    shown = parse_html(text)
    assert page == 1 and f"page 2 of {-(-19 // ARTICLES_PER_PAGE)}" in shown
    assert f"{ARTICLES_PER_PAGE + 1}. “Story <{ARTICLES_PER_PAGE + 1}>” (1 May)" in shown
    assert f"“Story <{ARTICLES_PER_PAGE + 2}>” (1 May): 1 paragraph, 4 words ✓" in shown
    assert "Story <1>" not in shown
    assert articles_page(records, 99, None)[1] == 2  # clamped to the last page
    assert parse_html(scope_html(None, 19)) == "This chat asks the whole library (19 articles)."
    assert "only: 3 “R&D <weekly>”" in parse_html(scope_html([_record()], 19))


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


@pytest.mark.parametrize("data", ["n:1:0123abcd:0", "n:1:0123abcd:20", "n:1:0123abcd:21", "n:1:0123abcd:999999999"])
def test_next_match_data_with_a_rank_out_of_range_is_not_a_button(data: str) -> None:
    assert decode_button(data) is None


def test_next_match_data_in_range_is_a_button() -> None:
    assert decode_button("n:5:0123abcd:19") == Button("next", 5, "0123abcd", rank=19)


def test_entity_text_reads_utf16_offsets_and_refuses_a_cut_surrogate_pair() -> None:
    text = "😀 @CiteTestBot hi"
    assert entity_text(text, 3, 12) == "@CiteTestBot"  # the emoji is two UTF-16 units
    assert entity_text(text, 1, 12) is None  # starts inside the emoji
    assert entity_text(text, 0, 1) is None  # ends inside it
    assert entity_text(text, 10, 50) is None and entity_text(text, -1, 2) is None
