"""Web articles and feeds in the library, end to end: ``citebot add URL``, ``add --feed``, ``refresh``.

A real HTTP server on 127.0.0.1 (tests/support/news_server.py) serves the pages and the feed; the real ``citebot``
fetches them, with ``CITEBOT_FETCH_ALLOW_PRIVATE=1`` (loopback is refused otherwise, as the first test shows).
"""

from __future__ import annotations

import json

import pytest

from tests.support.news_server import NewsServer, file, page

LOCAL = {"CITEBOT_FETCH_ALLOW_PRIVATE": "1", "CITEBOT_FETCH_TIMEOUT": "3"}
RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Coast Herald</title><link>{base}/</link>{items}</channel></rss>"""
ITEM = "<item><title>{title}</title><link>{link}</link><guid>{link}</guid></item>"


def _feed(base: str, items: list[tuple[str, str]]) -> bytes:
    return RSS.format(base=base, items="".join(ITEM.format(title=t, link=link) for t, link in items)).encode()


def test_a_web_page_is_refused_from_loopback_unless_allowed_and_then_named_in_every_quote(run_citebot) -> None:
    with NewsServer({"/news/harbour.html": file("harbour.html")}) as server:
        url = server.url("/news/harbour.html")
        refused = run_citebot("add", url)
        assert refused.returncode == 2 and "refused address" in refused.stderr and url in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        added = run_citebot("add", url, env=LOCAL)
        assert added.returncode == 0, added.stderr
        assert "added [2] Port Elwin harbour reopens after storm" in added.stdout
    listed = json.loads(run_citebot("list", "--json").stdout)[1]
    assert listed["source"] == url and listed["kind"] == "html" and listed["fetched_at"]
    asked = json.loads(run_citebot("ask", "Which ship sank across the harbour entrance?", "--json", "--in", "2").stdout)
    top = asked["passages"][0]
    assert asked["found"] and "Marta Levin" in top["text"]
    assert top["article"]["url"] and top["article"]["title"] == "Port Elwin harbour reopens after storm"


@pytest.mark.parametrize("search", ["local", "qdrant"])
def test_a_feed_is_added_then_refresh_adds_replaces_and_leaves(run_citebot, search: str) -> None:
    env = {**LOCAL, "CITEBOT_SEARCH": search}  # qdrant: Qdrant Edge in the data directory
    with NewsServer() as server:
        harbour, danube = server.url("/news/harbour.html"), server.url("/world/danube.html")
        server.routes["/news/harbour.html"] = file("harbour.html")
        server.routes["/world/danube.html"] = file("wire.html")
        server.routes["/feed.xml"] = page(
            _feed(server.url(""), [("Harbour", harbour), ("Danube", danube)]), "application/rss+xml", ETag='"1"'
        )
        added = run_citebot("add", "--feed", server.url("/feed.xml"), env=env)
        assert added.returncode == 0, added.stderr
        assert "added [2] Port Elwin harbour" in added.stdout and "added [3] Danube countries" in added.stdout

        quiet = run_citebot("refresh", env=env)
        assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout + quiet.stderr  # nothing changed

        bzip2 = server.url("/notes/bzip2.html")
        server.routes["/notes/bzip2.html"] = file("bzip2.html")
        server.routes["/feed.xml"] = page(
            _feed(server.url(""), [("Bzip2", bzip2), ("Danube", danube)]), "application/rss+xml", ETag='"2"'
        )
        changed = (server.routes["/world/danube.html"], None)
        wire = (changed[0], "Ministers from twelve countries agreed on Tuesday to triple funding")
        body = open(_data("wire.html"), "rb").read().replace(b"double funding", b"triple funding")  # noqa: SIM115
        server.routes["/world/danube.html"] = page(body)
        refreshed = run_citebot("refresh", env=env)
        assert refreshed.returncode == 0, refreshed.stderr
        lines = refreshed.stdout.strip().splitlines()
        assert any(line.startswith("added [4] A short history of bzip2") for line in lines), lines
        assert any(line.startswith("replaced the earlier version of [3] Danube countries") for line in lines), lines
        assert not any("Port Elwin" in line for line in lines)  # unchanged, so not listed
        del wire
    asked = json.loads(
        run_citebot("ask", "How much will funding for flood defences grow?", "--json", "--in", "3", env=env).stdout
    )
    assert "triple" in asked["passages"][0]["text"]
    ids = [a["id"] for a in json.loads(run_citebot("list", "--json").stdout)]
    assert ids == [1, 2, 3, 4]  # the Danube story kept its id when replaced


def _data(name: str) -> str:
    from tests.support.news_server import DATA

    return str(DATA / name)
