"""Hostile fetching (issue 14, section 2): slow headers, refused feed items, pages that vanish, odd schemes, charsets.

Everything goes over real HTTP to tests/support/news_server.py on 127.0.0.1; addresses such as 10.0.0.5 appear only
in feeds and are refused before any connection is made.
"""

from __future__ import annotations

import time

import pytest

from index.config import IndexConfig
from index.errors import FetchError
from index.reading.feeds import read_feed
from index.reading.fetch import (
    URL_SHOWN,
    FetchConfig,
    Fetched,
    article_from_fetched,
    fetch,
    is_url,
    is_web_url,
    url_scheme,
)
from index.sources import add_feed, add_loaded, load, refresh
from index.store.library import Library
from tests.support.news_server import LOCAL, STRICT, NewsServer, endless, file, page, trickle_headers

CLI_LOCAL = {"CITEBOT_FETCH_ALLOW_PRIVATE": "1"}
RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Coast Herald</title><link>{base}/</link>{items}</channel></rss>"""
ITEM = "<item><title>{title}</title><link>{link}</link><guid>{link}</guid></item>"


def _feed(base: str, links: list[str]) -> bytes:
    return RSS.format(base=base, items="".join(ITEM.format(title=f"Story {i}", link=u) for i, u in enumerate(links)))


def _one_line_error(result, message: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- one deadline for connect, headers and body ---------------------------------------------------------------


def test_a_server_that_trickles_its_headers_hits_the_deadline() -> None:
    with NewsServer({"/drip": trickle_headers(0.2, 60)}) as server:  # about 25 s of headers, no pause over 0.2 s
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"timeout \(the server took more than 1\.5 s in all"):
            fetch(server.url("/drip"), FetchConfig(allow_private=True, read_timeout=5, total_timeout=1.5))
        assert time.monotonic() - started < 4


def test_citebot_add_gives_up_on_trickling_headers(run_citebot) -> None:
    with NewsServer({"/drip": trickle_headers(0.2, 100)}) as server:  # about 35 s of headers
        started = time.monotonic()
        # CITEBOT_FETCH_TIMEOUT=0.5: each step 0.5 s (never hit: a byte comes every 0.2 s), the whole fetch 3 s
        result = run_citebot("add", server.url("/drip"), env={**CLI_LOCAL, "CITEBOT_FETCH_TIMEOUT": "0.5"}, timeout=60)
        took = time.monotonic() - started
    _one_line_error(result, "timeout")
    assert took < 20, took


# --- feed items: refused addresses, pages that vanish -----------------------------------------------------------


@pytest.fixture
def library():
    lib = Library(None, IndexConfig(seed=False))
    yield lib
    lib.close()


def test_a_feed_item_at_a_private_address_is_refused_not_blamed_on_robots(library, embedder) -> None:
    with NewsServer() as server:
        server.routes["/feed.xml"] = page(_feed(server.url(""), ["http://10.0.0.5/story.html"]).encode(), "text/xml")
        changes = add_feed(library, embedder, server.url("/feed.xml"), STRICT)
        assert [c.status for c in changes] == ["skipped"]
        assert "refused address" in changes[0].reason and "10.0.0.5" in changes[0].reason
        assert "robots" not in changes[0].reason
        assert "/robots.txt" not in " ".join(server.seen.paths())  # nothing asked of anyone about 10.0.0.5
        assert refresh(library, embedder, STRICT) == []  # said once; a cron refresh does not repeat it


def test_a_page_that_disappears_is_kept_reported_once_and_never_a_failure(library, embedder) -> None:
    with NewsServer({"/news/harbour.html": file("harbour.html")}) as server:
        url = server.url("/news/harbour.html")
        record = add_loaded(library, embedder, load(url, STRICT)).record
        del server.routes["/news/harbour.html"]  # now 404

        first = refresh(library, embedder, STRICT)
        assert [(c.status, c.source) for c in first] == [("gone", url)]
        assert "HTTP 404" in first[0].reason and url not in first[0].reason  # the front end prints the URL once
        assert f"citebot remove {record.id}" in first[0].reason
        assert library.catalog.by_source(url) is not None  # the archive keeps its copy

        second = refresh(library, embedder, STRICT)
        assert [c.status for c in second] == ["unchanged"] and "gone since" in second[0].reason

        server.routes["/news/harbour.html"] = file("harbour.html")  # it came back
        assert [c.status for c in refresh(library, embedder, STRICT)] == ["unchanged"]
        del server.routes["/news/harbour.html"]
        assert [c.status for c in refresh(library, embedder, STRICT)] == ["gone"]  # gone again: said again


def test_a_feed_item_that_is_gone_is_skipped_once(library, embedder) -> None:
    with NewsServer() as server:
        server.routes["/feed.xml"] = page(_feed(server.url(""), [server.url("/gone.html")]).encode(), "text/xml")
        changes = add_feed(library, embedder, server.url("/feed.xml"), STRICT)
        assert [c.status for c in changes] == ["skipped"] and "gone (HTTP 404)" in changes[0].reason
        assert refresh(library, embedder, STRICT) == []


def test_cron_refresh_of_a_vanished_page_exits_0_and_says_it_once(run_citebot) -> None:
    with NewsServer({"/news/harbour.html": file("harbour.html")}) as server:
        url = server.url("/news/harbour.html")
        assert run_citebot("add", url, env=CLI_LOCAL).returncode == 0
        del server.routes["/news/harbour.html"]
        first = run_citebot("refresh", env=CLI_LOCAL)
        second = run_citebot("refresh", env=CLI_LOCAL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count(url) == 1 and first.stdout.startswith("gone: "), first.stdout
    assert second.returncode == 0 and second.stdout == "", second.stdout + second.stderr


# --- schemes, long URLs, sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", ["file:/etc/passwd", "file:///etc/passwd", "ftp://example.com/a.txt", "gopher://x/1"]
)
def test_other_schemes_are_refused_as_unsupported_not_taken_for_files(source: str) -> None:
    with pytest.raises(FetchError) as info:
        load(source, LOCAL)
    message = str(info.value)
    assert message.startswith(source) and "unsupported URL scheme" in message and "no such file" not in message


def test_feeds_refuse_other_schemes_too() -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme ftp:"):
        read_feed("ftp://example.com/feed.xml", LOCAL)


def test_the_url_rule_is_one_function() -> None:
    assert [url_scheme(t) for t in ("HTTPS://x.org/a", "file:/etc/passwd", "mailto:a@b.org")] == [
        "https",
        "file",
        "mailto",
    ]
    for path in ("notes.txt", "notes:2024.txt", "C:\\news\\a.txt", "./file:/x", "/tmp/a.html"):
        assert not is_url(path), path
    assert is_web_url("http://x.org") and not is_web_url("ftp://x.org")


def test_citebot_add_refuses_a_file_url(run_citebot) -> None:
    line = _one_line_error(run_citebot("add", "file:/etc/passwd"), "unsupported URL scheme file:")
    assert "no such file" not in line


def test_long_urls_are_cut_in_messages() -> None:
    with NewsServer() as server:
        url = server.url("/" + "a" * 5000 + "/end")
        with pytest.raises(FetchError) as info:
            fetch(url, LOCAL)
    message = str(info.value)
    assert "HTTP 404" in message and "…" in message and "/end" in message
    assert len(message) < URL_SHOWN + 60, len(message)


def test_sizes_are_printed_as_they_are_configured() -> None:
    ten = 10 * 1024 * 1024  # CITEBOT_FETCH_MAX_BYTES's default, "10 MB" in the README
    with NewsServer() as server:
        server.routes["/declared"] = endless("declared", 50 * 1024 * 1024, declare_length=True)
        with pytest.raises(FetchError, match=r"too large \(50 MB; the limit is 10 MB\)$"):
            fetch(server.url("/declared"), FetchConfig(allow_private=True, max_bytes=ten))
        server.routes["/stream"] = endless("stream", 50 * 1024 * 1024)
        with pytest.raises(FetchError, match=r"too large \(more than 2 MB\)$"):
            fetch(server.url("/stream"), FetchConfig(allow_private=True, max_bytes=2 * 1024 * 1024))


# --- a page that names the wrong charset ---------------------------------------------------------------------------

ARABIC = (
    "أعيد فتح الميناء يوم الجمعة بعد العاصفة التي ضربت الساحل الشمالي طوال الأسبوع الماضي. "
    "وقال مدير الميناء إن قوارب الصيد عادت إلى الرصيف في نفس اليوم بعد الظهر، وإن الفرق عملت ليلا ونهارا "
    "لإزالة الحطام من المدخل. وأضاف أن السفن التجارية ستعود تدريجيا خلال الأيام المقبلة، "
    "وأن السلطات المحلية خصصت أموالا إضافية لإصلاح الأرصفة المتضررة وتعويض الصيادين عن خسائرهم."
)


def _served(body: bytes, content_type: str) -> Fetched:
    with NewsServer({"/a.html": page(body, content_type)}) as server:
        got = fetch(server.url("/a.html"), LOCAL)
    assert isinstance(got, Fetched)
    return got


def test_utf8_declared_as_latin1_is_read_as_utf8() -> None:
    html = f"<html><head><title>الميناء</title></head><body><article><p>{ARABIC}</p></article></body></html>"
    article = article_from_fetched(_served(html.encode("utf-8"), "text/html; charset=ISO-8859-1"))
    assert "أعيد فتح الميناء يوم الجمعة" in article.text and "Ø" not in article.text


def test_real_latin1_is_still_read_as_latin1() -> None:
    story = " ".join(["Le café du port a rouvert vendredi après la tempête, à la joie des pêcheurs."] * 6)
    html = f"<html><body><article><p>{story}</p></article></body></html>"
    article = article_from_fetched(_served(html.encode("latin-1"), "text/html; charset=iso-8859-1"))
    assert "Le café du port a rouvert vendredi après la tempête" in article.text
