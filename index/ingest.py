"""Ingest: read an article file (plain text, Markdown or HTML) into an :class:`Article`."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from index.clean import CLEANER_VERSION, clean_text
from index.errors import ArticleError

#: Larger files are refused: citebot answers from one article, not a library.
MAX_ARTICLE_BYTES = 5 * 1024 * 1024

FORMATS = ("text", "markdown", "html")
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_PARAGRAPH_SEP = "\n\n"


@dataclass(frozen=True)
class Article:
    """A cleaned article: the text citebot quotes from, split into paragraphs.

    Attributes:
        text: the cleaned story, paragraphs separated by a blank line; every
            quote is an exact substring of it.
        paragraphs: ``(start, end)`` character spans of each paragraph in ``text``.
        title: the headline, or ``""`` when the article has none.
        date: a dateline found in the article, if any.
        source: where the article came from (a path or a label).
        fingerprint: a hash of the cleaned text, title and cleaner version.
    """

    text: str
    paragraphs: tuple[tuple[int, int], ...]
    title: str = ""
    date: str | None = None
    source: str = ""
    fingerprint: str = ""

    def paragraph(self, number: int) -> str:
        """Return the text of paragraph ``number`` (0-based)."""
        start, end = self.paragraphs[number]
        return self.text[start:end]

    @property
    def label(self) -> str:
        """A short human name for the article: its title, else its file name."""
        return self.title or Path(self.source).name or "the article"


def article_from_paragraphs(
    paragraphs: list[str] | tuple[str, ...], title: str = "", date: str | None = None, source: str = ""
) -> Article:
    """Join already-clean ``paragraphs`` into an :class:`Article`.

    Raises:
        ArticleError: when no paragraph has any text.
    """
    kept = [p.strip() for p in paragraphs if p.strip()]
    if not kept:
        raise ArticleError(f"{source or 'article'}: no text in it (empty or only whitespace)")
    spans: list[tuple[int, int]] = []
    offset = 0
    for p in kept:
        spans.append((offset, offset + len(p)))
        offset += len(p) + len(_PARAGRAPH_SEP)
    text = _PARAGRAPH_SEP.join(kept)
    digest = hashlib.sha256(f"{CLEANER_VERSION}\0{title}\0{text}".encode()).hexdigest()
    return Article(text=text, paragraphs=tuple(spans), title=title, date=date, source=source, fingerprint=digest)


def decode(data: bytes, source: str) -> str:
    """Decode ``data`` as UTF-8 text, refusing binary files with a one-line reason.

    Raises:
        ArticleError: for binary content or bytes that are not UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ArticleError(f"{source}: not valid UTF-16 text ({exc.reason})") from None
    if b"\x00" in data[:8192]:
        raise ArticleError(f"{source}: looks like a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(
            f"{source}: not UTF-8 text (bad byte at offset {exc.start}); convert it, e.g. iconv -t UTF-8"
        ) from None
    sample = text[:8192]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    if sample and controls / len(sample) > 0.01:
        raise ArticleError(f"{source}: looks like a binary file, not text")
    return text


def detect_format(name: str, text: str) -> str:
    """Return ``"html"``, ``"markdown"`` or ``"text"`` from the file name, then the content."""
    suffix = Path(name).suffix.lower()
    if suffix in _HTML_SUFFIXES:
        return "html"
    if suffix in _MARKDOWN_SUFFIXES:
        return "markdown"
    head = text.lstrip()[:512].lower()
    if head.startswith(("<!doctype html", "<html")) or ("<body" in head and "</" in text):
        return "html"
    return "text"


def html_to_text(html: str) -> str:
    """Extract the main text of an HTML page with trafilatura, one paragraph per block."""
    import trafilatura

    body = trafilatura.extract(html, include_comments=False, include_tables=False, favor_precision=True) or ""
    metadata = trafilatura.extract_metadata(html)
    title = (metadata.title if metadata else None) or ""
    paragraphs = body.replace("\r", "").split("\n")
    return _PARAGRAPH_SEP.join(([title] if title else []) + paragraphs)


_MD_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_MD_QUOTE = re.compile(r"^\s{0,3}>\s?", re.MULTILINE)
_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_MD_HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")


def markdown_to_text(markdown: str) -> str:
    """Strip Markdown markup (headings, emphasis, links, images, fences) and keep the words."""
    text = markdown.replace("\r\n", "\n")
    text = _MD_FRONT_MATTER.sub("", text)
    text = _MD_FENCE.sub("", text)
    text = _MD_RULE.sub("", text)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub(lambda m: m.group(1) + "\n", text)
    text = _MD_QUOTE.sub("", text)
    text = _MD_HTML_TAG.sub("", text)
    return _MD_EMPHASIS.sub(r"\2", text)


def parse_article(data: bytes, name: str = "article.txt", source: str | None = None) -> Article:
    """Decode, convert and clean the bytes of an article file.

    Args:
        data: the file's bytes.
        name: its file name; the suffix picks the format (``.md``, ``.html``, else text).
        source: a label for messages; defaults to ``name``.

    Returns:
        The cleaned :class:`Article`.

    Raises:
        ArticleError: when the bytes are binary, not UTF-8, or hold no text.
    """
    source = source or name
    text = decode(data, source)
    fmt = detect_format(name, text)
    if fmt == "html":
        text = html_to_text(text)
    elif fmt == "markdown":
        text = markdown_to_text(text)
    cleaned = clean_text(text)
    return article_from_paragraphs(cleaned.paragraphs, title=cleaned.title, date=cleaned.date, source=source)


def read_article(path: str | Path) -> Article:
    """Read and clean the article at ``path``.

    Raises:
        ArticleError: when the file is missing, unreadable, too large, binary,
            not UTF-8, or holds no text. The message is one line.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ArticleError(f"{p}: no such file")
    if p.is_dir():
        raise ArticleError(f"{p}: is a directory, not an article file")
    try:
        size = p.stat().st_size
        if size > MAX_ARTICLE_BYTES:
            raise ArticleError(
                f"{p}: too large ({size / 1e6:.1f} MB; citebot reads articles up to {MAX_ARTICLE_BYTES / 1e6:.0f} MB)"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise ArticleError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return parse_article(data, name=p.name, source=str(p))
