"""Sources: turning what a user names (a file, a web page, a feed) into library articles, and keeping them fresh.

:func:`load` reads a path or fetches a URL (safely: :mod:`index.reading.fetch`) into an article and what the
catalog keeps about where it came from; :func:`load_upload` does the same for the bytes of a file a front end was
sent (a document sent to the Telegram bot); :func:`add_loaded` adds either. :func:`add_feed` adds every item of an
RSS or Atom feed (:mod:`index.reading.feeds`) and remembers the feed. :func:`refresh` re-checks every web article
and feed of the library: conditional requests first (ETag, Last-Modified), then the content's fingerprint, and
adds, replaces or leaves each, reporting what it did. Front ends (``citebot add``, ``citebot refresh``, the
Telegram bot) call these; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.robotparser import RobotFileParser

from index.errors import CitebotError, FetchStatusError
from index.reading.article import Article
from index.reading.feeds import read_feed
from index.reading.fetch import (
    AddressRefused,
    FetchConfig,
    Fetched,
    NotModified,
    article_from_fetched,
    check_target,
    fetch,
    is_url,
    robots_allowed,
    short_url,
)
from index.reading.ingest import format_of_name, parse_article, read_article
from index.store.catalog import ArticleRecord, Provenance, now

if TYPE_CHECKING:
    from index.analysis.embed import Embedder
    from index.store.library import AddResult, Library

__all__ = ["Change", "Loaded", "add_feed", "add_loaded", "error_reason", "is_url", "load", "load_upload", "refresh"]

#: HTTP statuses that mean a page is gone for good: reported once by ``refresh``, never a failure.
GONE_STATUSES = (404, 410)


@dataclass(frozen=True)
class Loaded:
    """An article read from a source, with what the catalog keeps about where it came from.

    Attributes:
        article: the cleaned article (its ``source`` is the path or the URL asked for).
        provenance: its kind and, for a web page, when it was fetched and the server's validators.
    """

    article: Article
    provenance: Provenance


def _kind(article: Article, name: str, content_type: str | None = None) -> str:
    if article.pages is not None:
        return "pdf"
    media = content_type or ""
    by_name = format_of_name(name.split("?")[0])
    if "html" in media or by_name == "html":
        return "html"
    if by_name == "markdown":
        return "markdown"
    return "text"


def _fetched_provenance(article: Article, got: Fetched) -> Provenance:
    """Return what the catalog keeps about a fetched page: its kind, when it was fetched, its validators."""
    kind = _kind(article, got.final_url, got.content_type)
    return Provenance(kind, fetched_at=got.fetched_at, etag=got.etag, last_modified=got.last_modified)


def load(source: str, config: FetchConfig | None = None) -> Loaded:
    """Return the article at ``source``: a file path, or an http(s) URL fetched under ``config``'s rules.

    Raises:
        CitebotError: one line naming the source and the reason (:class:`~index.errors.ArticleError`,
            :class:`~index.errors.FetchError`).
    """
    if not is_url(source):
        path = Path(source).expanduser()
        article = read_article(path)
        absolute = str(path.resolve()) if path.exists() else str(path)
        return Loaded(replace(article, source=absolute), Provenance(_kind(article, path.name)))
    got = fetch(source, config)
    assert not isinstance(got, NotModified)  # no condition was sent
    article = replace(article_from_fetched(got), source=source)
    return Loaded(article, _fetched_provenance(article, got))


def load_upload(data: bytes, name: str, source: str) -> Loaded:
    """Return the article in ``data``, the bytes of a file called ``name`` that a front end received (its format
    by the bytes, then the name, as for a path), stored as coming from ``source``.

    Raises:
        ArticleError: one line naming ``name`` (never ``source``, which may hold a front end's internal ids).
    """
    article = parse_article(data, name)
    return Loaded(replace(article, source=source), Provenance(_kind(article, name)))


def add_loaded(
    library: Library,
    embedder: Embedder,
    loaded: Loaded,
    feed: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AddResult:
    """Add a loaded article to ``library`` (no-op when it has the content; a replacement for the same source).

    Raises:
        Stopped: when ``should_stop()`` says so before the article is stored (see :meth:`Library.add`).
    """
    provenance = loaded.provenance if feed is None else replace(loaded.provenance, feed=feed)
    return library.add(loaded.article, embedder, provenance, should_stop=should_stop)


@dataclass(frozen=True)
class Change:
    """What :func:`add_feed` or :func:`refresh` did with one source.

    Attributes:
        source: the URL (of an article or a feed).
        status: ``"added"``, ``"replaced"``, ``"unchanged"``, ``"skipped"`` (robots.txt) or ``"failed"``.
        record: the article concerned, when there is one.
        reason: why it failed or was skipped.
    """

    source: str
    status: str
    record: ArticleRecord | None = None
    reason: str = ""


def add_feed(
    library: Library,
    embedder: Embedder,
    url: str,
    config: FetchConfig | None = None,
    report: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """Add every item of the feed at ``url`` and remember the feed for :func:`refresh`; return what happened.

    Items already in the library are left as they are; robots.txt is honoured for every item.

    Raises:
        CitebotError: when the feed itself cannot be read (one line naming it).
    """
    feed = read_feed(url, config)
    assert not isinstance(feed, NotModified)
    library.catalog.save_feed(url, feed.title, feed.etag, feed.last_modified, now())
    return _add_items(library, embedder, url, [item.url for item in feed.items], config, report)


def _add_items(
    library: Library,
    embedder: Embedder,
    feed: str,
    urls: list[str],
    config: FetchConfig | None,
    report: Callable[[Change], None],
) -> list[Change]:
    changes = []
    robots: dict[str, RobotFileParser] = {}
    for item in urls:
        if library.catalog.by_source(item) is not None:
            continue
        change: Change | None
        try:
            check_target(item, config)
            if not robots_allowed(item, config, cache=robots):
                change = Change(item, "skipped", reason="robots.txt disallows it")
            else:
                result = add_loaded(library, embedder, load(item, config), feed=feed)
                change = Change(item, result.status, result.record)
        except AddressRefused as exc:
            change = _skipped_once(library, item, error_reason(exc, item))
        except FetchStatusError as exc:
            if exc.status in GONE_STATUSES:
                change = _skipped_once(library, item, f"the page is gone (HTTP {exc.status})")
            else:
                change = Change(item, "failed", reason=error_reason(exc, item))
        except CitebotError as exc:
            change = Change(item, "failed", reason=error_reason(exc, item))
        if change is None:
            continue
        report(change)
        changes.append(change)
    return changes


def error_reason(error: Exception, *sources: str) -> str:
    """Return the message of ``error`` without the source it opens with (one of ``sources``, or its short form):
    front ends show the source beside it."""
    message = str(error)
    for name in (n for source in sources for n in (source, short_url(source))):
        if message.startswith(f"{name}: "):
            return message[len(name) + 2 :]
    return message


def _mark(source: str) -> str:
    return f"gone:{source}"


def _remember(library: Library, source: str, value: str) -> None:
    """Note in the library's meta table that ``source`` was reported (``value``: the date), or forget it (``""``)."""
    with library.catalog.transaction():
        library.catalog.set_meta(_mark(source), value)


def _skipped_once(library: Library, item: str, reason: str) -> Change | None:
    """Report a feed item that cannot be added (gone, refused address) the first time only; ``None`` afterwards."""
    if library.catalog.get_meta(_mark(item)):
        return None
    _remember(library, item, now())
    return Change(item, "skipped", reason=f"{reason}; not reported again")


def refresh(
    library: Library,
    embedder: Embedder,
    config: FetchConfig | None = None,
    report: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """Re-check every feed and every web article of ``library``; add, replace or leave each; return the changes.

    A feed's new items are added; an article whose server says "not modified", or whose content has the
    same fingerprint, is left; a changed one is replaced (same id). Safe to run from cron beside the bot:
    writes take the library's lock, and readers pick the changes up by themselves.

    A page that is gone (HTTP 404 or 410) is reported once, as ``"gone"``, and kept: the library is an archive,
    so its copy stays (``citebot remove`` drops it); later runs report it as ``"unchanged"`` until the page
    comes back. A feed item that is gone, or at a refused address, is ``"skipped"`` once and then left quietly;
    neither is a failure, so a cron ``refresh`` does not fail forever over a page that moved.
    """
    changes: list[Change] = []
    for feed_url, etag, last_modified in library.catalog.feeds():
        try:
            feed = read_feed(feed_url, config, etag=etag, last_modified=last_modified)
        except CitebotError as exc:
            change = Change(feed_url, "failed", reason=str(exc))
            report(change)
            changes.append(change)
            continue
        if isinstance(feed, NotModified):
            continue
        library.catalog.save_feed(feed_url, feed.title, feed.etag, feed.last_modified, now())
        changes += _add_items(library, embedder, feed_url, [item.url for item in feed.items], config, report)
    for record in library.records():
        if not is_url(record.source) or any(c.record is not None and c.record.id == record.id for c in changes):
            continue
        change = _refresh_article(library, embedder, record, config)
        report(change)
        changes.append(change)
    return changes


def _refresh_article(library: Library, embedder: Embedder, record: ArticleRecord, config: FetchConfig | None) -> Change:
    try:
        try:
            got = fetch(record.source, config, etag=record.etag, last_modified=record.last_modified)
        except FetchStatusError as exc:
            if exc.status not in GONE_STATUSES:
                raise
            return _gone(library, record, exc.status)
        if library.catalog.get_meta(_mark(record.source)):
            _remember(library, record.source, "")  # it came back
        if isinstance(got, NotModified):
            library.catalog.touch(record.id, fetched_at=now())
            return Change(record.source, "unchanged", record)
        article = replace(article_from_fetched(got), source=record.source)
        if article.fingerprint == record.fingerprint:
            library.catalog.touch(record.id, fetched_at=got.fetched_at, etag=got.etag, last_modified=got.last_modified)
            return Change(record.source, "unchanged", record)
        loaded = Loaded(article, _fetched_provenance(article, got))
        result = add_loaded(library, embedder, loaded, feed=record.feed)
        return Change(record.source, result.status, result.record)
    except CitebotError as exc:
        return Change(record.source, "failed", record, error_reason(exc, record.source))


def _gone(library: Library, record: ArticleRecord, status: int) -> Change:
    """Keep an article whose page is gone; report it as ``"gone"`` the first time, ``"unchanged"`` after."""
    since = library.catalog.get_meta(_mark(record.source))
    if since:
        return Change(record.source, "unchanged", record, f"gone since {since[:10]} (HTTP {status}); the copy is kept")
    _remember(library, record.source, now())
    return Change(
        record.source,
        "gone",
        record,
        f"the page is gone (HTTP {status}); the article stays in the library (citebot remove {record.id} drops it)",
    )
