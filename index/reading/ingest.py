"""Ingest: read an article (plain text, Markdown, HTML or PDF) into an :class:`Article`.

Files are read with a size cap enforced while reading (a pipe or ``/dev/zero``
cannot get past it), their format is recognised by their bytes before their
name, and every refusal is one line that names the file and the reason.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
import unicodedata
from pathlib import Path
from typing import BinaryIO

from index.errors import ArticleError
from index.reading.article import Article, article_from_cleaned, megabytes
from index.reading.clean import clean_blocks, clean_text

#: Larger files are refused: citebot answers from one article, not a library.
MAX_ARTICLE_BYTES = 5 * 1024 * 1024

FORMATS = ("text", "markdown", "html", "pdf")
#: File name suffixes citebot knows, and the format of each (one of :data:`FORMATS`); the bytes still decide
#: first (``%PDF-`` is a PDF, an HTML document is HTML), and a file with any other name is read as text.
SUFFIX_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".mkd": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}
_READ_CHUNK = 1 << 16
#: A whole HTML document: a doctype or an <html> element first (after an XML declaration or comments).
_HTML_DOCUMENT = re.compile(r"\A(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S)
_HTML_CLOSING = re.compile(r"</(?:p|div|article|body|html|head|title|h[1-6]|li)\s*>", re.IGNORECASE)


def _utf16_without_bom(data: bytes) -> str | None:
    """Return ``"utf-16-le"`` or ``"utf-16-be"`` when ``data`` looks like UTF-16 text without a byte-order mark."""
    sample = data[:8192]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_zeros, odd_zeros = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_zeros > 0.3 and even_zeros < 0.05:
        return "utf-16-le"
    if even_zeros > 0.3 and odd_zeros < 0.05:
        return "utf-16-be"
    return None


def _looks_binary(text: str) -> bool:
    """Whether more than 1% of the start of ``text`` is control characters."""
    sample = text[:8192]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    return bool(sample) and controls / len(sample) > 0.01


def _encoding_hint(data: bytes, source: str) -> str:
    """Name the likely 8-bit encoding of non-UTF-8 ``data`` and the iconv command that converts it."""
    high = [b for b in data[:65536] if b >= 0x80]
    letters = sum(1 for b in high if b >= 0xC0 or b in (0x8A, 0x8C, 0x8E, 0x9A, 0x9C, 0x9E, 0x9F))
    if high and any(0x80 <= b <= 0x9F for b in high):
        name, code = "Windows-1252 (Western European)", "WINDOWS-1252"
    elif high and letters >= 0.6 * len(high):
        name, code = "Latin-1 (ISO-8859-1)", "LATIN1"
    else:
        return "find its encoding (file -i) and convert it, e.g. iconv -f ENCODING -t UTF-8"
    path = shlex.quote(source)
    return f"it looks like {name}: convert it with iconv -f {code} -t UTF-8 {path} > converted.txt"


def decode(data: bytes, source: str) -> str:
    """Decode ``data`` as UTF-8 (or UTF-16, with or without a byte-order mark), refusing binary files.

    Raises:
        ArticleError: for binary content or bytes that are not UTF-8; the message names the likely encoding.
    """
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else _utf16_without_bom(data)
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ArticleError(f"{source}: not valid UTF-16 text ({exc.reason})") from None
        if _looks_binary(text):
            raise ArticleError(f"{source}: looks like a binary file, not text")
        return text
    if b"\x00" in data[:8192]:
        raise ArticleError(f"{source}: looks like a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(
            f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            + _encoding_hint(data, source)
        ) from None
    if _looks_binary(text):
        raise ArticleError(f"{source}: looks like a binary file, not text")
    return text


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` is a PDF: its header ``%PDF-`` is within the first 1024 bytes, as readers accept."""
    return b"%PDF-" in data[:1024]


def format_of_name(name: str) -> str | None:
    """Return the format :data:`SUFFIX_FORMATS` gives ``name``'s suffix (any case), or ``None`` for another suffix."""
    return SUFFIX_FORMATS.get(Path(name).suffix.lower())


def detect_format(name: str, text: str) -> str:
    """Return ``"html"``, ``"markdown"`` or ``"text"``: an HTML document by its content, else by the name, else tags."""
    head = text.lstrip()[:4096]
    by_name = format_of_name(name)
    if _HTML_DOCUMENT.match(head):
        return "html"
    if by_name == "markdown":
        return "markdown"  # Markdown may open with raw HTML (a centred logo) and is still Markdown
    if by_name == "html" or (head.startswith("<") and _HTML_CLOSING.search(head)):
        return "html"
    return "text"


def article_from_html(html: str, source: str, url: str | None = None) -> Article:
    """Clean an HTML page into an :class:`Article` with the page's title, date, site, author and canonical URL."""
    from index.reading.markup import read_html

    document = read_html(html, url=url)
    cleaned = clean_blocks(document.blocks, title=document.title)
    return article_from_cleaned(
        cleaned,
        source,
        date=document.date or cleaned.date,
        url=url,
        site=document.site,
        author=document.author,
        canonical_url=document.canonical_url,
    )


def parse_article(data: bytes, name: str = "article.txt", source: str | None = None) -> Article:
    """Decode, convert and clean the bytes of an article file.

    Args:
        data: the file's bytes.
        name: its file name; used for the format only when the bytes do not say it
            (``%PDF-`` is a PDF and ``<html>`` is HTML whatever the name).
        source: a label for messages; defaults to ``name``.

    Returns:
        The cleaned :class:`Article`.

    Raises:
        ArticleError: when the bytes are binary, not UTF-8, a PDF without text, or hold no text.
    """
    source = source or name
    if is_pdf(data):
        from index.reading.pdf import article_from_pdf

        return article_from_pdf(data, source)
    text = decode(data, source)
    fmt = detect_format(name, text)
    if fmt == "html":
        return article_from_html(text, source)
    if fmt == "markdown":
        from index.reading.markup import read_markdown

        document = read_markdown(text)
        return article_from_cleaned(clean_blocks(document.blocks, title=document.title), source)
    return article_from_cleaned(clean_text(text), source)


_FILE_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _check_path(p: Path) -> None:
    """Refuse a path that is missing, a symlink loop, a directory or a device, with one line."""
    try:
        mode = os.stat(p).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArticleError(f"{p}: symlink loop (a link that points back to itself)") from None
        if exc.errno == errno.ENOENT and os.path.islink(p):
            raise ArticleError(f"{p}: broken symlink (it points to {os.readlink(p)}, which does not exist)") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ArticleError(f"{p}: no such file") from None
        raise ArticleError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ArticleError(f"{p}: is a directory, not an article file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ArticleError(f"{p}: is {kind}, not an article file (citebot reads regular files and pipes)")


def read_capped(p: Path, limit: int) -> bytes:
    """Return the bytes of ``p``, reading at most ``limit`` + 1 of them whatever the file claims to hold.

    Raises:
        ArticleError: when there are more than ``limit`` bytes, or the file cannot be read.
    """
    try:
        with open(p, "rb", buffering=0) as handle:
            data = read_at_most(handle, limit)
    except OSError as exc:
        raise ArticleError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise ArticleError(f"{p}: too large (more than {megabytes(limit)}; citebot reads articles up to that size)")
    return data


def read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Return what ``handle`` holds, but never more than ``limit`` + 1 bytes of it (more than ``limit``: too large).

    Raises:
        OSError: when reading fails.
    """
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = handle.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_article(path: str | Path) -> Article:
    """Read and clean the article at ``path`` (a regular file or a pipe).

    Raises:
        ArticleError: when the file is missing, a symlink loop, a directory or
            device, unreadable, too large, binary, not UTF-8, a PDF without
            text, or holds no text. The message is one line.
    """
    p = Path(path).expanduser()
    _check_path(p)
    data = read_capped(p, MAX_ARTICLE_BYTES)
    return parse_article(data, name=p.name, source=str(p))
