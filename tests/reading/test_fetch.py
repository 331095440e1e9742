"""Fetching URLs safely: every rule of index/reading/fetch.py, over real HTTP to a server on 127.0.0.1.

Traffic goes only to 127.0.0.1 (and, in the rebinding test, a second loopback address nothing listens on):
addresses such as 10.0.0.5 or 169.254.169.254 appear only in redirects and resolver answers that the
address rule must refuse before any connection is made.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from index.errors import CitebotError, FetchError
from index.reading.fetch import (
    FetchConfig,
    Fetched,
    NotModified,
    article_from_fetched,
    fetch,
    refused_reason,
    robots_allowed,
)
from tests.support.news_server import LOCAL, STRICT, NewsServer, endless, file, gzipped, page, redirect, slow, trickle
from tests.support.paths import SOURCES
from tests.support.pdf_samples import report_pdf, scanned_pdf


@pytest.fixture
def server():
    routes = {
        "/news/harbour.html": file(
            "harbour.html", ETag='"harbour-v1"', **{"Last-Modified": "Fri, 14 Mar 2025 09:30:00 GMT"}
        ),
        "/paywall.html": file("paywall.html"),
        "/image.png": page(b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png"),
        "/data.json": page(b'{"a": 1}', "application/json"),
    }
    with NewsServer(routes) as running:
        yield running


def _resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


# --- the address rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.5",
        "172.16.4.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2002:a00:1::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_reason(address, FetchConfig()) is not None
    assert refused_reason(address, FetchConfig(allow_private=True)) is None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_reason(address, FetchConfig()) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/news/harbour.html",
        "http://localhost:{port}/news/harbour.html",
        "http://2130706433:{port}/",
    ],
)
def test_loopback_is_refused_before_any_connection(server, url: str) -> None:
    with pytest.raises(FetchError, match="refused address") as info:
        fetch(url.format(port=server.port), FetchConfig())
    assert "\n" not in str(info.value) and "CITEBOT_FETCH_ALLOW_PRIVATE" in str(info.value)
    assert server.seen.requests == []


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("http://10.0.0.5/internal", "10.0.0.5, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
        ("http://rebind.test/admin", "rebind.test is 10.0.0.7"),
        ("http://[::ffff:192.168.0.1]/", "a private address"),
    ],
)
def test_every_redirect_hop_is_checked(server, location: str, refused: str) -> None:
    server.routes["/go"] = redirect(location)
    resolve = _resolver({"rebind.test": ["10.0.0.7"]})
    with pytest.raises(FetchError, match="refused address") as info:
        fetch(server.url("/go"), STRICT, resolve=resolve)
    assert refused in str(info.value)
    assert str(info.value).startswith(f"{server.url('/go')} (redirected to {location}")
    assert server.seen.paths() == ["/go"]  # the first hop was made, the second never


def test_a_host_with_one_private_address_among_public_ones_is_refused(server) -> None:
    resolve = _resolver({"mixed.test": ["127.0.0.1", "10.1.1.1"]})
    with pytest.raises(FetchError, match=r"10\.1\.1\.1"):
        fetch(server.url("/news/harbour.html", host="mixed.test"), STRICT, resolve=resolve)
    assert server.seen.requests == []


def test_dns_is_resolved_once_per_hop_and_the_checked_address_is_the_one_connected_to(server) -> None:
    # A rebinding resolver: the first answer passes the check, later answers point elsewhere (a second
    # loopback address nothing listens on). Connecting to anything but the checked address would fail.
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]

    got = fetch(server.url("/news/harbour.html", host="news.test"), STRICT, resolve=rebinding)
    assert isinstance(got, Fetched) and got.status == 200
    assert calls == ["news.test"]
    _path, headers = server.seen.requests[0]
    assert headers["host"] == f"news.test:{server.port}"  # the Host header keeps the name, not the address


def test_allow_private_lifts_the_rule(server) -> None:
    got = fetch(server.url("/news/harbour.html"), LOCAL)
    assert isinstance(got, Fetched) and b"Port Elwin" in got.body


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/a.txt",
        "gopher://example.org/",
        "javascript:alert(1)",
        "http://u:p@example.org/",
    ],
)
def test_only_plain_http_and_https_urls(url: str) -> None:
    with pytest.raises(FetchError) as info:
        fetch(url, FetchConfig())
    assert str(info.value).startswith(url) and "\n" not in str(info.value)


def test_a_redirect_to_another_scheme_is_refused(server) -> None:
    server.routes["/to-file"] = redirect("file:///etc/passwd")
    with pytest.raises(FetchError, match="only http:// and https://"):
        fetch(server.url("/to-file"), LOCAL)


# --- HTTPS: the connection is pinned, the name is still verified ---------------------------------------


@pytest.fixture
def tls_context(tmp_path: Path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=news.test", "-addext", "subjectAltName=DNS:news.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)


def test_https_connects_to_the_checked_address_with_sni_and_verifies_the_name(tls_context) -> None:
    context, cert = tls_context
    with NewsServer({"/story": file("harbour.html")}, tls=context) as server:
        config = FetchConfig(allow_networks=("127.0.0.1/32",), ca_file=cert, connect_timeout=2, read_timeout=2)
        got = fetch(server.url("/story", host="news.test"), config, resolve=_resolver({"news.test": ["127.0.0.1"]}))
        assert isinstance(got, Fetched) and b"Port Elwin" in got.body
        assert server.seen.sni[-1] == "news.test"
        # The same address under a name the certificate does not carry fails verification.
        with pytest.raises(FetchError, match="cannot connect"):
            fetch(server.url("/story", host="other.test"), config, resolve=_resolver({"other.test": ["127.0.0.1"]}))


# --- limits -----------------------------------------------------------------------------------------------


def test_redirects_are_followed_up_to_five(server) -> None:
    for i in range(5):
        server.routes[f"/hop{i}"] = redirect(f"/hop{i + 1}" if i < 4 else "/news/harbour.html", 301 if i % 2 else 302)
    got = fetch(server.url("/hop0"), LOCAL)
    assert isinstance(got, Fetched)
    assert got.final_url == server.url("/news/harbour.html") and got.url == server.url("/hop0")
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(server.url("/loop"), LOCAL)
    assert server.seen.paths().count("/loop") == 6  # the first request and five redirects, no more


def test_a_slow_server_times_out(server) -> None:
    server.routes["/slow"] = slow(3.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timeout"):
        fetch(server.url("/slow"), FetchConfig(allow_private=True, read_timeout=0.5, connect_timeout=1))
    assert time.monotonic() - started < 2.5


def test_a_trickling_server_hits_the_deadline(server) -> None:
    server.routes["/drip"] = trickle(0.2, 100)
    with pytest.raises(FetchError, match="timeout"):
        fetch(server.url("/drip"), FetchConfig(allow_private=True, read_timeout=1, total_timeout=1.0))


def test_an_oversized_body_is_cut_off_while_streaming(server) -> None:
    total = 200 * 1024 * 1024
    server.routes["/huge"] = endless("huge", total)
    with pytest.raises(FetchError, match=r"too large \(more than 1,000,000 bytes\)"):
        fetch(server.url("/huge"), FetchConfig(allow_private=True, max_bytes=1_000_000))
    deadline = time.monotonic() + 5
    while not server.seen.hung_up.get("huge") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.seen.hung_up["huge"]  # the client closed the connection early...
    assert server.seen.streamed["huge"] < 20 * 1024 * 1024  # ...long before the 200 MB were sent


def test_a_declared_oversized_body_is_refused_before_reading(server) -> None:
    server.routes["/declared"] = endless("declared", 50 * 1024 * 1024, declare_length=True)
    with pytest.raises(FetchError, match="too large"):
        fetch(server.url("/declared"), FetchConfig(allow_private=True, max_bytes=1_000_000))


def test_a_gzip_bomb_is_capped_after_decompression(server) -> None:
    server.routes["/bomb"] = gzipped(b"<p>" + b"a" * 30_000_000 + b"</p>")
    with pytest.raises(FetchError, match="too large"):
        fetch(server.url("/bomb"), FetchConfig(allow_private=True, max_bytes=1_000_000))
    server.routes["/small"] = gzipped((SOURCES / "harbour.html").read_bytes())
    got = fetch(server.url("/small"), LOCAL)
    assert isinstance(got, Fetched) and b"Port Elwin" in got.body


@pytest.mark.parametrize(("path", "kind"), [("/image.png", "image/png"), ("/data.json", "application/json")])
def test_wrong_content_types_are_not_articles(server, path: str, kind: str) -> None:
    with pytest.raises(FetchError, match=f"not an article \\(content type {kind}\\)"):
        fetch(server.url(path), LOCAL)


def test_http_errors_name_the_status(server) -> None:
    with pytest.raises(FetchError) as info:
        fetch(server.url("/missing"), LOCAL)
    assert str(info.value) == f"{server.url('/missing')}: HTTP 404 Not Found"


def test_nothing_listening_is_a_one_line_error(server) -> None:
    from tests.support.news_server import free_port_without_server

    url = f"http://127.0.0.1:{free_port_without_server()}/"
    with pytest.raises(FetchError, match="cannot connect") as info:
        fetch(url, LOCAL)
    assert str(info.value).startswith(url) and "\n" not in str(info.value)


def test_user_agent_names_citebot_and_conditional_requests_work(server) -> None:
    url = server.url("/news/harbour.html")
    first = fetch(url, LOCAL)
    assert isinstance(first, Fetched)
    assert server.seen.requests[0][1]["user-agent"].startswith("citebot/")
    assert first.etag == '"harbour-v1"' and first.last_modified == "Fri, 14 Mar 2025 09:30:00 GMT"
    again = fetch(url, LOCAL, etag=first.etag, last_modified=first.last_modified)
    assert isinstance(again, NotModified) and again.etag == '"harbour-v1"'
    assert server.seen.requests[1][1]["if-none-match"] == '"harbour-v1"'
    assert fetch(url, LOCAL).fingerprint == first.fingerprint  # unchanged content, same fingerprint


# --- from a response to an article ---------------------------------------------------------------------


def test_a_news_page_becomes_an_article_with_its_metadata(server) -> None:
    got = fetch(server.url("/news/harbour.html"), LOCAL)
    article = article_from_fetched(got)
    assert article.title == "Port Elwin harbour reopens after storm"
    assert article.url == server.url("/news/harbour.html")
    assert article.site == "The Coast Herald"
    assert article.author == "Tomas Reyes"
    assert article.date == "2025-03-14"
    assert article.canonical_url == "https://coastherald.example/news/2025/03/harbour-reopens"
    assert article.fetched_at == got.fetched_at and article.fetched_at.endswith("+00:00")
    assert len(article.paragraphs) == 5
    for boilerplate in ("cookies", "Sponsored", "SeaSafe", "Related", "newsletter", "Most read", "Comments", "gtag"):
        assert boilerplate not in article.text


def test_a_paywall_stub_is_refused(server) -> None:
    with pytest.raises(FetchError, match=r"empty extraction.*paywall") as info:
        article_from_fetched(fetch(server.url("/paywall.html"), LOCAL))
    assert isinstance(info.value, CitebotError) and "\n" not in str(info.value)


def test_pdfs_by_url_keep_their_pages_and_scans_are_refused(server, tmp_path: Path) -> None:
    server.routes["/report.pdf"] = page(report_pdf(tmp_path / "r.pdf").read_bytes(), "application/pdf")
    server.routes["/download"] = page((tmp_path / "r.pdf").read_bytes(), "application/octet-stream")
    server.routes["/scan.pdf"] = page(scanned_pdf(tmp_path / "s.pdf").read_bytes(), "application/pdf")
    article = article_from_fetched(fetch(server.url("/report.pdf"), LOCAL))
    assert article.pages is not None and max(article.pages) == 4 and article.url == server.url("/report.pdf")
    sniffed = fetch(server.url("/download"), LOCAL)
    assert isinstance(sniffed, Fetched) and sniffed.content_type == "application/pdf"
    with pytest.raises(FetchError, match="no text layer"):
        article_from_fetched(fetch(server.url("/scan.pdf"), LOCAL))


def test_robots_txt_is_respected(server) -> None:
    server.routes["/robots.txt"] = page(b"User-agent: citebot\nDisallow: /private/\n", "text/plain")
    cache: dict = {}
    assert robots_allowed(server.url("/news/a.html"), LOCAL, cache)
    assert not robots_allowed(server.url("/private/b.html"), LOCAL, cache)
    assert server.seen.paths().count("/robots.txt") == 1  # cached per site
    del server.routes["/robots.txt"]
    assert robots_allowed(server.url("/private/b.html"), LOCAL)  # no robots.txt (404): everything allowed
    server.routes["/robots.txt"] = lambda request: request.reply(503, b"busy", "text/plain")
    assert not robots_allowed(server.url("/news/a.html"), LOCAL)  # a failing server: crawl nothing this time


# --- settings -----------------------------------------------------------------------------------------------


def test_fetch_settings_are_read_from_the_environment() -> None:
    from bot.settings import Settings

    default = Settings.from_env({}, env_file=None).fetch
    assert (default.max_bytes, default.allow_private, default.max_redirects) == (10 * 1024 * 1024, False, 5)
    env = {"CITEBOT_FETCH_MAX_BYTES": "2000000", "CITEBOT_FETCH_TIMEOUT": "3", "CITEBOT_FETCH_ALLOW_PRIVATE": "yes"}
    fetch_config = Settings.from_env(env, env_file=None).fetch
    assert fetch_config.max_bytes == 2_000_000 and fetch_config.allow_private
    assert (fetch_config.connect_timeout, fetch_config.read_timeout, fetch_config.total_timeout) == (3, 3, 18)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CITEBOT_FETCH_ALLOW_PRIVATE", "maybe", "expected one of 1, true, yes, on, 0, false, no, off"),
        ("CITEBOT_FETCH_MAX_BYTES", "lots", "expected a whole number from 1024 to 1073741824"),
        ("CITEBOT_FETCH_TIMEOUT", "0", "expected a number from 0.1 to 600.0"),
    ],
)
def test_bad_fetch_settings_are_one_line_errors(run_citebot, name: str, value: str, expected: str) -> None:
    result = run_citebot("ask", "Who?", env={name: value})
    assert result.returncode == 2
    assert result.stderr.strip() == f"citebot: error: {name}={value!r} is not valid: {expected}"


def test_plain_text_and_a_latin1_page_by_url(server) -> None:
    text = "The ferry to the islands sails on Monday.\n\nTickets are on sale at the harbour office.\n"
    server.routes["/notice.txt"] = page(text.encode(), "text/plain; charset=utf-8")
    article = article_from_fetched(fetch(server.url("/notice.txt"), LOCAL))
    assert article.text == text.strip() and article.site == "127.0.0.1"
    html = (SOURCES / "harbour.html").read_text().replace("Port Elwin", "Port Élwin")
    server.routes["/latin1.html"] = page(html.encode("latin-1", "replace"), "text/html; charset=ISO-8859-1")
    article = article_from_fetched(fetch(server.url("/latin1.html"), LOCAL))
    assert "Port Élwin" in article.text
