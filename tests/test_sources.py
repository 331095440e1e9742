"""Reading articles right (issue 9): structure over source lines, tag blocks, ads, Markdown, PDFs by their bytes,
page metadata, and feeds read over real HTTP from a server on 127.0.0.1."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from index.answer import answer
from index.config import IndexConfig
from index.errors import ArticleError, FetchError
from index.reading.article import Article
from index.reading.clean import clean_text
from index.reading.feeds import Feed, read_feed
from index.reading.fetch import NotModified, article_from_fetched, fetch
from index.reading.ingest import SUFFIX_FORMATS, parse_article, read_article
from index.search.retrieve import Searcher
from index.sources import add_feed, add_loaded, error_reason, load, load_upload, refresh
from index.store.library import Library
from tests.support.news_server import LOCAL, NewsServer, file, page
from tests.support.paths import SOURCES as DATA
from tests.support.pdf_samples import report_pdf, story


def paragraphs(article: Article) -> list[str]:
    return [article.paragraph(i) for i in range(len(article.paragraphs))]


# --- tag blocks -------------------------------------------------------------------------------------------


def test_a_paragraph_starting_with_topics_does_not_end_the_story() -> None:
    raw = (
        "Summit ends with a deal\n\n"
        "Ministers agreed on Tuesday to double funding for flood defences.\n\n"
        "Topics discussed at the summit also included shipping and the restoration of wetlands.\n\n"
        "Tags are not the only thing that follows, as this third paragraph shows.\n\n"
        "The next summit will be held in Budapest in 2027.\n\n"
        "Tags: Danube, Floods, Climate"
    )
    cleaned = clean_text(raw)
    assert cleaned.paragraphs == (
        "Ministers agreed on Tuesday to double funding for flood defences.",
        "Topics discussed at the summit also included shipping and the restoration of wetlands.",
        "Tags are not the only thing that follows, as this third paragraph shows.",
        "The next summit will be held in Budapest in 2027.",
    )


def test_a_trailing_tag_block_of_labels_is_dropped_and_a_large_file_keeps_its_lines(tmp_path: Path) -> None:
    assert clean_text("A story in one sentence.\n\nAnother one.\n\nFiled under\nPolitics\nEurope").paragraphs == (
        "A story in one sentence.",
        "Another one.",
    )
    rng = random.Random(7)
    words = [
        "river",
        "town",
        "council",
        "bridge",
        "flood",
        "road",
        "school",
        "market",
        "harbour",
        "ferry",
        "storm",
        "quay",
    ]
    lines = []
    for i in range(6000):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "."
        lines.append(("Topics of the day: " + sentence) if i == 1000 else sentence)
    path = tmp_path / "big.txt"
    path.write_text("\n\n".join(lines) + "\n\nTopics\nRiver\nTown\n")
    assert len(read_article(path).paragraphs) == 6000


# --- HTML structure, ads, metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["harbour", "bzip2", "wire"])
def test_html_pages_keep_the_story_paragraphs_and_drop_the_boilerplate(name: str) -> None:
    assert paragraphs(read_article(DATA / f"{name}.html")) == story(name)


def test_line_breaks_inside_a_paragraph_do_not_split_it() -> None:
    article = read_article(DATA / "bzip2.html")
    assert "bzip2 and" not in paragraphs(article)
    assert any(
        p.startswith("The program was written by Julian Seward") and p.endswith("Micah Snyder.")
        for p in paragraphs(article)
    )
    assert article.title == "A short history of bzip2"  # the first <br>-broken line is not taken for the title


def test_who_wrote_bzip2_is_answered_with_the_whole_sentence(embedder, tmp_path: Path) -> None:
    library = Library(None, IndexConfig(seed=False))
    library.add(read_article(DATA / "bzip2.html"), embedder)
    result = answer(Searcher(library, embedder), "Who wrote bzip2?")
    assert "written by Julian Seward" in result.passages[0].text


AD_PAGE = b"""<html><head><title>Town budget approved</title></head><body><article><h1>Town budget approved</h1>
<p>The town council approved its budget for next year on Monday night after a debate that lasted four hours.</p>
<div class="sponsored-content"><p>Sponsored: Switch your energy supplier today and save 300 euros a year.</p></div>
<p>The budget includes money for a new library, two playgrounds and repairs to the old bridge, the mayor said.</p>
<p>Promoted | Find the best mortgage rates in minutes with our free comparison service for first-time buyers.</p>
<p>Opposition councillors said the plan would raise local taxes by three percent and promised to challenge it.</p>
</article></body></html>"""


def test_sponsored_and_advertisement_blocks_inside_the_article_are_dropped() -> None:
    assert paragraphs(parse_article(AD_PAGE, name="budget.html")) == [
        "The town council approved its budget for next year on Monday night after a debate that lasted four hours.",
        "The budget includes money for a new library, two playgrounds and repairs to the old bridge, the mayor said.",
        "Opposition councillors said the plan would raise local taxes by three percent and promised to challenge it.",
    ]
    text = read_article(DATA / "wire.html").text + read_article(DATA / "harbour.html").text
    for ad in ("Sponsored", "luxury river cruise", "SeaSafe", "Advertisement"):
        assert ad not in text


def test_a_local_html_file_gets_the_page_metadata() -> None:
    article = read_article(DATA / "harbour.html")
    assert (article.site, article.author, article.date) == ("The Coast Herald", "Tomas Reyes", "2025-03-14")
    assert article.canonical_url == "https://coastherald.example/news/2025/03/harbour-reopens"
    assert article.url is None and article.pages is None


def test_html_is_recognised_by_its_content_whatever_the_name() -> None:
    html = (DATA / "harbour.html").read_bytes()
    assert paragraphs(parse_article(html, name="download.txt")) == story("harbour")
    fragment = (
        b"<p>The ferry to the islands sails on Monday,\nthe port authority said.</p>\n<p>Tickets are on sale.</p>"
    )
    assert paragraphs(parse_article(fragment, name="x.txt")) == [
        "The ferry to the islands sails on Monday, the port authority said.",
        "Tickets are on sale.",
    ]


# --- plain text and Markdown --------------------------------------------------------------------------------


def test_plain_text_with_one_paragraph_per_line_keeps_its_paragraphs() -> None:
    lines = [
        "The harbour reopened to shipping on Friday morning, eight days after a winter storm closed the channel.",
        "Divers spent most of the week cutting away the wreck of a feeder ship that sank across the entrance.",
        '"We had boats queuing out past the lighthouse," said the harbour master, who has worked there for years.',
        "The storm brought gusts of 140 kilometres an hour and a surge that flooded the fish market and the terminal.",
        "Fishing boats returned to the quay the same afternoon, and the first ferry is due to sail on Monday.",
    ]
    assert list(clean_text("\n".join(lines)).paragraphs) == lines


def test_markdown_is_read_as_structure_tables_and_code_left_out() -> None:
    article = read_article(DATA / "river.md")
    assert paragraphs(article) == story("river")
    assert article.title == "River levels this spring"
    for syntax in ("|", "---", "```", "levels = read_levels", "Kilbride", "**", "]("):
        assert syntax not in article.text


# --- PDFs by their bytes ----------------------------------------------------------------------------------------


def test_an_uncompressed_pdf_named_txt_is_read_as_a_pdf(tmp_path: Path) -> None:
    from reportlab import rl_config

    old, rl_config.pageCompression = rl_config.pageCompression, 0
    try:
        pdf = report_pdf(tmp_path / "r.pdf")
    finally:
        rl_config.pageCompression = old
    assert b" Tj" in pdf.read_bytes() or b"TJ" in pdf.read_bytes()  # the operators are there in plain text
    renamed = tmp_path / "report.txt"
    renamed.write_bytes(pdf.read_bytes())
    article = read_article(renamed)
    assert article.pages is not None
    for operator in (" Tj", " Tf", "BT", "endobj", "%PDF"):
        assert operator not in article.text
    assert "compliance rate of 99.84 per cent" in article.text


# --- fetched pages and feeds ------------------------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Coast Herald: Local</title><link>{base}/</link>
{items}
</channel></rss>"""
ITEM = "<item><title>{title}</title><link>{link}</link><guid>{guid}</guid><pubDate>{date}</pubDate></item>"
LAST_MODIFIED = "Fri, 14 Mar 2025 10:00:00 GMT"


def _feed(base: str, items: list[tuple[str, str, str]]) -> bytes:
    body = "\n".join(
        ITEM.format(title=t, link=link, guid=link, date=d) for t, link, d in items
    )  # links may be relative: they resolve against the feed
    return RSS.format(base=base, items=body).encode()


def test_a_feed_whose_items_change_between_two_reads() -> None:
    with NewsServer() as server:
        first = [
            ("Harbour reopens", "/news/harbour.html", "Fri, 14 Mar 2025 09:30:00 GMT"),
            ("Danube deal", server.url("/world/danube.html"), "Tue, 10 Jun 2025 12:00:00 GMT"),
        ]
        server.routes["/feed.xml"] = page(_feed(server.url(""), first), "application/rss+xml", ETag='"feed-1"')
        server.routes["/news/harbour.html"] = file("harbour.html")
        server.routes["/world/danube.html"] = file("wire.html")
        feed = read_feed(server.url("/feed.xml"), LOCAL)
        assert isinstance(feed, Feed) and feed.title == "Coast Herald: Local"
        assert [i.url for i in feed.items] == [server.url("/news/harbour.html"), server.url("/world/danube.html")]
        assert feed.items[0].published == "2025-03-14T09:30:00+00:00"
        articles = [article_from_fetched(fetch(item.url, LOCAL)) for item in feed.items]
        assert [a.title for a in articles] == [
            "Port Elwin harbour reopens after storm",
            "Danube countries agree to double flood defence funding",
        ]

        unchanged = read_feed(server.url("/feed.xml"), LOCAL, etag=feed.etag)
        assert isinstance(unchanged, NotModified)

        second = [("Bzip2 history", "/notes/bzip2.html", "Wed, 18 Jun 2025 08:00:00 GMT"), first[1]]
        server.routes["/feed.xml"] = page(_feed(server.url(""), second), "application/rss+xml", ETag='"feed-2"')
        changed = read_feed(server.url("/feed.xml"), LOCAL, etag=feed.etag)
        assert isinstance(changed, Feed) and changed.etag == '"feed-2"'
        assert changed.fingerprint != feed.fingerprint
        old_urls, new_urls = {i.url for i in feed.items}, {i.url for i in changed.items}
        assert new_urls - old_urls == {server.url("/notes/bzip2.html")}
        assert old_urls - new_urls == {server.url("/news/harbour.html")}


def test_where_an_article_came_from_reaches_the_catalog_and_refresh_updates_it(embedder, tmp_path: Path) -> None:
    library = Library(None, IndexConfig(seed=False))
    with NewsServer() as server:
        harbour = server.url("/news/harbour.html")
        server.routes["/news/harbour.html"] = file("harbour.html", ETag='"h1"', **{"Last-Modified": LAST_MODIFIED})
        items = [("Harbour reopens", harbour, "Fri, 14 Mar 2025 09:30:00 GMT")]
        server.routes["/feed.xml"] = page(_feed(server.url(""), items), "application/rss+xml")
        changes = add_feed(library, embedder, server.url("/feed.xml"), LOCAL)
        assert [(c.source, c.status) for c in changes] == [(harbour, "added")]
        record = library.catalog.by_source(harbour)
        assert record is not None
        assert (record.kind, record.feed, record.etag, record.last_modified) == (
            "html",
            server.url("/feed.xml"),
            '"h1"',
            LAST_MODIFIED,
        )
        assert record.fetched_at and record.url == harbour

        server.routes["/news/harbour.html"] = file("harbour.html", ETag='"h2"')  # same text, new validators
        assert [(c.source, c.status) for c in refresh(library, embedder, LOCAL)] == [(harbour, "unchanged")]
        touched = library.catalog.by_source(harbour)
        assert touched is not None and (touched.id, touched.etag, touched.last_modified) == (record.id, '"h2"', None)

    markdown = tmp_path / "notes.md"
    markdown.write_text("# Notes\n\nThe ferry to the islands sails on Monday, the port authority said.\n")
    added = add_loaded(library, embedder, load(str(markdown)))
    assert (added.status, added.record.kind, added.record.feed, added.record.fetched_at) == (
        "added",
        "markdown",
        None,
        None,
    )


def test_an_atom_feed_and_a_page_that_is_not_a_feed() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Notes</title><id>urn:x</id><updated>2025-01-01T00:00:00Z</updated>
<entry><title>One</title><link href="/one.html"/><id>urn:1</id><updated>2025-01-02T00:00:00Z</updated></entry>
<entry><title>Mail</title><link href="mailto:a@b.example"/><id>urn:2</id><updated>2025-01-02T00:00:00Z</updated></entry>
</feed>"""
    with NewsServer({"/atom.xml": page(atom, "application/atom+xml"), "/page.html": file("harbour.html")}) as server:
        feed = read_feed(server.url("/atom.xml"), LOCAL)
        assert isinstance(feed, Feed) and [i.url for i in feed.items] == [server.url("/one.html")]
        with pytest.raises(FetchError, match="not a feed"):
            read_feed(server.url("/page.html"), LOCAL)


def test_a_feed_is_not_an_article() -> None:
    with (
        NewsServer({"/feed.xml": page(_feed("http://x", []), "application/rss+xml")}) as server,
        pytest.raises(FetchError, match="not an article but a feed"),
    ):
        article_from_fetched(fetch(server.url("/feed.xml"), LOCAL))


def test_a_page_wrapped_in_one_form_keeps_its_story() -> None:
    html = b"""<html><head><title>Parish news</title></head><body><form id="aspnetForm" method="post" action="./n.aspx">
<div id="header" role="banner"><a href="/">Parish of St Brigid</a></div>
<div id="main"><h1>Parish news</h1>
<p>The parish hall will reopen on Sunday after six months of repairs to the roof, damaged in the January storm.</p>
<p>The parish council thanked the volunteers who raised more than 40,000 euros for the work through cake sales.</p>
</div></form></body></html>"""
    article = parse_article(html, name="news.aspx")
    assert article.title == "Parish news"
    assert [p[:24] for p in paragraphs(article)] == ["The parish hall will reo", "The parish council thank"]


def test_markdown_that_opens_with_raw_html_is_still_markdown() -> None:
    md = b'<p align="center"><img src="a.png"></p>\n\n# Ferry timetable\n\nThe first ferry leaves at **07:10** daily.'
    article = parse_article(md, name="README.md")
    assert article.title == "Ferry timetable"
    assert paragraphs(article) == ["The first ferry leaves at 07:10 daily."]


@pytest.mark.parametrize("suffix", sorted(s for s, kind in SUFFIX_FORMATS.items() if kind == "markdown"))
def test_every_markdown_suffix_is_read_and_catalogued_as_markdown(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"river{suffix.upper() if suffix == '.mdown' else suffix}"
    path.write_bytes((DATA / "river.md").read_bytes())
    loaded = load(str(path))
    assert loaded.provenance.kind == "markdown"
    assert loaded.article.title == "River levels this spring" and paragraphs(loaded.article) == story("river")


# --- uploads: the bytes of a file a front end was sent --------------------------------------------------


def test_an_upload_is_read_as_the_same_file_on_disk_and_its_errors_name_the_file(tmp_path: Path) -> None:
    """The Telegram bot had its own rule for the kind (a text named scan.pdf was a "pdf"); now there is one."""
    text = b"# Ferry strike ends\n\nThe ferry crews ended their strike on Monday after a pay deal.\n"
    for name, data in (("scan.pdf", text), ("report.pdf", report_pdf(tmp_path / "r.pdf").read_bytes())):
        (tmp_path / name).write_bytes(data)
        upload, on_disk = load_upload(data, name, f"telegram:AgADxyz/{name}"), load(str(tmp_path / name))
        assert upload.article.source == f"telegram:AgADxyz/{name}"
        assert (upload.provenance, upload.article.fingerprint) == (on_disk.provenance, on_disk.article.fingerprint)
    with pytest.raises(ArticleError) as refused:
        load_upload(bytes(range(256)) * 40, "binary.txt", "telegram:AgADxyz/binary.txt")
    assert str(refused.value) == "binary.txt: looks like a binary file, not text"
    reason = error_reason(refused.value, "telegram:AgADxyz/binary.txt", "binary.txt")
    assert reason == "looks like a binary file, not text"
