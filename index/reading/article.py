"""Article: the cleaned text citebot quotes from, as one typed record, and how it is made from paragraphs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from index.errors import ArticleError
from index.reading.clean import CLEANER_VERSION, CleanedText

_PARAGRAPH_SEP = "\n\n"


@dataclass(frozen=True)
class Article:
    """A cleaned article: the text citebot quotes from, split into paragraphs.

    Attributes:
        text: the cleaned story, paragraphs separated by a blank line; every
            quote is an exact substring of it.
        paragraphs: ``(start, end)`` character spans of each paragraph in ``text``.
        title: the headline, or ``""`` when the article has none.
        date: the publication date (a dateline found in the text, or ``YYYY-MM-DD`` from a page's metadata).
        source: where the article came from (a path, a URL or a label).
        fingerprint: a hash of the cleaned text, title and cleaner version.
        url: the URL it was fetched from (after redirects), for a web page.
        site: the site's name (``og:site_name``), else the host, for a web page.
        author: the byline, when the page or document names one.
        canonical_url: the URL the page names as its own, when it names one.
        pages: for a PDF, the page (1-based) of each paragraph, one per paragraph; ``None`` otherwise.
        fetched_at: when it was fetched (ISO 8601, UTC), for an article fetched by URL.
    """

    text: str
    paragraphs: tuple[tuple[int, int], ...]
    title: str = ""
    date: str | None = None
    source: str = ""
    fingerprint: str = ""
    url: str | None = None
    site: str | None = None
    author: str | None = None
    canonical_url: str | None = None
    pages: tuple[int, ...] | None = None
    fetched_at: str | None = None

    def paragraph(self, number: int) -> str:
        """Return the text of paragraph ``number`` (0-based)."""
        start, end = self.paragraphs[number]
        return self.text[start:end]

    def page(self, number: int) -> int | None:
        """Return the PDF page (1-based) paragraph ``number`` (0-based) is on, or ``None`` when not a PDF."""
        return self.pages[number] if self.pages else None

    @property
    def label(self) -> str:
        """A short human name for the article (see :func:`article_label`)."""
        return article_label(self.title, self.source)


def article_label(title: str, source: str, article_id: int | None = None) -> str:
    """Return an article's name: its title, else its source's last part, else ``article ID`` or ``the article``."""
    if title:
        return title
    tail = source.rstrip("/").rsplit("/", 1)[-1]
    return tail.removeprefix("bundled:") or (f"article {article_id}" if article_id is not None else "the article")


def article_from_paragraphs(
    paragraphs: list[str] | tuple[str, ...],
    title: str = "",
    date: str | None = None,
    source: str = "",
    *,
    url: str | None = None,
    site: str | None = None,
    author: str | None = None,
    canonical_url: str | None = None,
    pages: tuple[int, ...] | list[int] | None = None,
) -> Article:
    """Join already-clean ``paragraphs`` into an :class:`Article` (``pages``, when given, has one page per paragraph).

    Raises:
        ArticleError: when no paragraph has any text.
    """
    numbered = [(i, p.strip()) for i, p in enumerate(paragraphs) if p.strip()]
    if not numbered:
        raise ArticleError(f"{source or 'article'}: no text in it (empty or only whitespace)")
    if pages is not None and len(pages) != len(paragraphs):
        raise ValueError(f"pages must have one page per paragraph ({len(paragraphs)}), got {len(pages)}")
    kept = [p for _, p in numbered]
    spans: list[tuple[int, int]] = []
    offset = 0
    for p in kept:
        spans.append((offset, offset + len(p)))
        offset += len(p) + len(_PARAGRAPH_SEP)
    text = _PARAGRAPH_SEP.join(kept)
    digest = hashlib.sha256(f"{CLEANER_VERSION}\0{title}\0{text}".encode()).hexdigest()
    return Article(
        text=text,
        paragraphs=tuple(spans),
        title=title,
        date=date,
        source=source,
        fingerprint=digest,
        url=url,
        site=site,
        author=author,
        canonical_url=canonical_url,
        pages=tuple(pages[i] for i, _ in numbered) if pages is not None else None,
    )


def article_from_cleaned(cleaned: CleanedText, source: str, **metadata: object) -> Article:
    """Make an :class:`Article` of cleaned text; ``metadata`` are :class:`Article` fields (url, site, pages...)."""
    metadata.setdefault("date", cleaned.date)
    return article_from_paragraphs(cleaned.paragraphs, title=cleaned.title, source=source, **metadata)  # type: ignore[arg-type]


def megabytes(size: int) -> str:
    """Return ``size`` for messages as sizes are configured: ``"10 MB"`` for 10 x 1024 x 1024 bytes, else bytes.

    A megabyte is 1024 x 1024 bytes, as in the size caps (``MAX_ARTICLE_BYTES``, ``CITEBOT_FETCH_MAX_BYTES``); a
    size that is no whole number of them is shown to one decimal from 1 MB, in bytes below.
    """
    if size and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size:,} bytes"
