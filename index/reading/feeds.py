"""Feeds: the items of an RSS or Atom feed, fetched under :mod:`index.reading.fetch`'s rules, read with feedparser."""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin

from index.errors import FetchError
from index.reading.fetch import FEED_TYPES, FetchConfig, Fetched, NotModified, Resolver, fetch, is_web_url, short_url

#: What a feed may be served as: the feed types, and HTML or plain text from servers that label feeds badly.
_FEED_ACCEPT = (*FEED_TYPES, "text/html", "text/plain")


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed: the article's URL, its title, when it was published (ISO 8601 UTC) and its id."""

    url: str
    title: str = ""
    published: str | None = None
    id: str = ""


@dataclass(frozen=True)
class Feed:
    """A feed as read: its title, its items (newest first as the feed lists them) and what conditional requests need.

    ``fingerprint`` is a hash of the items' URLs and ids: equal fingerprints mean the same items.
    """

    url: str
    final_url: str
    title: str
    items: tuple[FeedItem, ...]
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str = ""

    @property
    def fingerprint(self) -> str:
        """A SHA-256 of the items' URLs and ids, in order."""
        return hashlib.sha256("\n".join(f"{i.url}\t{i.id}" for i in self.items).encode()).hexdigest()


def _published(entry: Any) -> str | None:
    """Return an entry's publication (or update) time as ISO 8601 UTC, if it has one."""
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
            return moment.isoformat(timespec="seconds")
    return None


def parse_feed(fetched: Fetched) -> Feed:
    """Read the items of a fetched feed; relative links are resolved, items without an http(s) link are skipped.

    Raises:
        FetchError: when the body is not an RSS or Atom feed.
    """
    import feedparser

    parsed = feedparser.parse(fetched.body, response_headers={"content-location": fetched.final_url})
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        raise FetchError(f"{short_url(fetched.final_url)}: not a feed (no RSS or Atom in it)")
    items: list[FeedItem] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        link = entry.get("link") or ""
        url = urljoin(fetched.final_url, link.strip()) if link else ""
        if not is_web_url(url) or url in seen:
            continue
        seen.add(url)
        title = " ".join(str(entry.get("title", "")).split())
        items.append(FeedItem(url=url, title=title, published=_published(entry), id=str(entry.get("id", "") or url)))
    title = " ".join(str(parsed.feed.get("title", "")).split())
    return Feed(
        url=fetched.url,
        final_url=fetched.final_url,
        title=title,
        items=tuple(items),
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        fetched_at=fetched.fetched_at,
    )


def read_feed(
    url: str,
    config: FetchConfig | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    *,
    resolve: Resolver | None = None,
) -> Feed | NotModified:
    """Fetch the feed at ``url`` and return its items, or :class:`NotModified` for an unchanged one.

    Raises:
        FetchError: one line naming the URL and the reason (as :func:`index.reading.fetch.fetch`, or not a feed).
    """
    got = fetch(url, config, etag, last_modified, resolve=resolve, accept=_FEED_ACCEPT)
    if isinstance(got, NotModified):
        return got
    return parse_feed(got)
