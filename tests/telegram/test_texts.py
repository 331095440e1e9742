"""The bot's own texts: example questions, /start, /source, /articles pages and a chat's scope."""

from __future__ import annotations

from bot.telegram.texts import (
    ARTICLES_PER_PAGE,
    articles_page,
    example_candidates,
    greeting_html,
    scope_html,
    source_html,
)
from index.reading.article import article_from_paragraphs
from index.store.catalog import ArticleRecord
from tests.support.fake_telegram import parse_html


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
