"""PDF: the text layer of a PDF as paragraphs in reading order, each with its page number.

pdfminer.six does the layout analysis: it groups characters into lines and
lines into text boxes (paragraphs), and orders the boxes by position, columns
included (README, "Sources", has the measurements against pypdf). Running
headers and footers (a line repeated at the top or bottom of most pages) and
bare page numbers are dropped; a paragraph that runs on to the next page is
joined and keeps its first page. A PDF with no text layer (a scan) is refused.

A PDF is small on disk but may inflate without bound (a "zlib bomb": 0.8 MB that inflates to 800 MB), so
before pdfminer sees it the filtered streams are decoded in pieces and counted, through every filter of each
(deflate, LZW, run-length, the ASCII armours, in any order and any number), and a PDF whose streams (images aside:
pdfminer does not decode them) hold more than ``MAX_PDF_INFLATED_BYTES`` is refused; reading
also stops past ``MAX_PDF_PAGES`` pages or ``MAX_PDF_SECONDS`` seconds. Each refusal names its reason.
"""

from __future__ import annotations

import io
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from index.errors import ArticleError
from index.reading.article import Article, article_from_cleaned, megabytes
from index.reading.clean import clean_blocks

#: The most a PDF's compressed streams (images aside) may inflate to, all together: ten times the file cap.
MAX_PDF_INFLATED_BYTES = 50 * 1024 * 1024
#: The most pages read from one PDF.
MAX_PDF_PAGES = 1000
#: The most seconds spent reading one PDF's pages.
MAX_PDF_SECONDS = 60.0
_STREAM_START = re.compile(rb"(?<!end)stream\r?\n")
_INFLATE_STEP = 1 << 20

_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-–—]?\s*\d{1,4}\s*[-–—]?(?:\s*(?:of|/)\s*\d{1,4})?$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_TERMINAL = (".", "!", "?", "…", ":", '"', "”", "’", ")")


@dataclass(frozen=True)
class PdfText:
    """A PDF's paragraphs in reading order, the page (1-based) of each, and its metadata title and author."""

    paragraphs: tuple[str, ...]
    pages: tuple[int, ...]
    page_count: int
    title: str = ""
    author: str | None = None


def _box_text(box: object) -> str:
    """Join a text box's lines into one paragraph: a line ending in a hyphen runs straight on."""
    text = ""
    for line in box.get_text().splitlines():  # type: ignore[attr-defined]
        line = line.strip()
        if not line:
            continue
        if text.endswith("-") and line[:1].isalpha():
            text += line
        else:
            text = f"{text} {line}" if text else line
    return text


def _metadata(document: object) -> tuple[str, str | None]:
    """Return the title and author from a pdfminer document's info dictionary."""
    from pdfminer.pdftypes import resolve1
    from pdfminer.utils import decode_text

    def value(info: dict, key: str) -> str:
        raw = resolve1(info.get(key))
        if isinstance(raw, bytes):
            return " ".join(decode_text(raw).split())
        return " ".join(str(raw).split()) if isinstance(raw, str) else ""

    for info in getattr(document, "info", []) or []:
        author = value(info, "Author")
        return value(info, "Title"), None if author.strip("()").lower() in ("", "anonymous", "unknown") else author
    return "", None


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Return the lines (digits masked) that open or close at least half of the pages: headers and footers."""
    if len(pages) < 2:
        return set()
    counts: Counter[str] = Counter()
    for boxes in pages:
        edges = {_DIGITS.sub("#", b) for b in boxes[:2] + boxes[-2:]}
        counts.update(edges)
    return {line for line, n in counts.items() if n >= max(2, len(pages) / 2)}


def _stream_dictionary(data: bytes, start: int) -> bytes:
    """Return the bytes between an object's ``obj`` keyword and its ``stream`` keyword at ``start`` (its dictionary)."""
    head = data[max(0, start - 4096) : start]
    opened = head.rfind(b"obj")
    return head[opened:] if opened >= 0 else head


def inflated_size(data: bytes, limit: int) -> int:
    """Return how many bytes the PDF's filtered streams (images aside) decode to, counting no further than ``limit``.

    Every filter pdfminer decodes is followed, in the stream's order (``[/FlateDecode /FlateDecode]``, LZW, an ASCII
    armour around a deflate bomb, run-length); each decodes at most ``limit`` bytes more, so a bomb costs that much
    work and memory at most. A stream that is not valid data for its filter counts what decoded before the error
    (pdfminer judges it).
    """
    total = 0
    for match in _STREAM_START.finditer(data):
        dictionary = _stream_dictionary(data, match.start())
        if b"/Image" in dictionary:
            continue
        filters = _filters(data, dictionary)
        if not filters:
            continue
        end = data.find(b"endstream", match.end())
        content = data[match.end() : end if end >= 0 else len(data)]
        for name in filters:
            decode = _decoders().get(name)
            if decode is None:
                break  # an image codec (DCT, JPX, JBIG2, CCITT) or one pdfminer refuses: no text behind it
            content = decode(content, limit - total)
            if len(content) > limit - total:
                return total + len(content)
        total += len(content)
    return total


_FILTER = re.compile(rb"/(?:Filter|F)\s*(\[[^\]]*\]|/[^\s/\[\]<>()]+|\d+\s+\d+\s+R)")
_NAME = re.compile(rb"/([^\s/\[\]<>()]+)")
_REFERENCE = re.compile(rb"(\d+)\s+(\d+)\s+R")


def _filters(data: bytes, dictionary: bytes) -> list[bytes]:
    """Return the filter names of a stream's ``dictionary``, in order (an indirect ``/Filter`` is looked up)."""
    found = _FILTER.search(dictionary)
    if found is None:
        return []
    value = found.group(1)
    if reference := _REFERENCE.fullmatch(value):
        target = re.search(rb"(?<!\d)%s\s+%s\s+obj\s*(\[[^\]]*\]|/[^\s/\[\]<>()]+)" % reference.groups(), data)
        value = target.group(1) if target else b""
    return _NAME.findall(value)


def _inflate(data: bytes, limit: int) -> bytes:
    """Return ``data`` inflated, stopping past ``limit`` bytes or at the first error (a megabyte at a time)."""
    inflater = zlib.decompressobj()
    out: list[bytes] = []
    size = 0
    position = 0
    try:
        while position < len(data) and not inflater.eof and size <= limit:
            pending = data[position : position + _INFLATE_STEP]
            position += _INFLATE_STEP
            while pending and not inflater.eof and size <= limit:
                out.append(inflater.decompress(pending, _INFLATE_STEP))
                size += len(out[-1])
                pending = inflater.unconsumed_tail
    except zlib.error:
        pass
    return b"".join(out)


def _unlzw(data: bytes, limit: int) -> bytes:
    """Return ``data`` LZW-decoded as pdfminer decodes it, stopping past ``limit`` bytes or at the first error."""
    from pdfminer.lzw import CorruptDataError, LZWDecoder

    decoder = LZWDecoder(io.BytesIO(data))
    out: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            piece = decoder.feed(decoder.readbits(decoder.nbits))
        except (EOFError, CorruptDataError, IndexError, TypeError):
            break
        out.append(piece)
        size += len(piece)
    return b"".join(out)


def _unrun(data: bytes, limit: int) -> bytes:
    """Return ``data`` run-length decoded, stopping past ``limit`` bytes or at its end-of-data byte."""
    out = bytearray()
    i = 0
    while i < len(data) and len(out) <= limit and data[i] != 128:
        n = data[i]
        if n < 128:
            out += data[i + 1 : i + 2 + n]
            i += n + 2
        else:
            out += data[i + 1 : i + 2] * (257 - n)
            i += 2
    return bytes(out)


def _unarmour(decode: Callable[[bytes], bytes]) -> Callable[[bytes, int], bytes]:
    """Return an ASCII filter's decoder taking a limit (ignored: it yields at most four bytes per byte read)."""

    def run(data: bytes, _limit: int) -> bytes:
        try:
            return decode(data)
        except Exception:  # a damaged armour: pdfminer judges it
            return b""

    return run


@lru_cache(maxsize=1)
def _decoders() -> dict[bytes, Callable[[bytes, int], bytes]]:
    """Return the bounded decoder of each filter name pdfminer decodes (full names and abbreviations)."""
    from pdfminer.ascii85 import ascii85decode, asciihexdecode

    hexed, a85 = _unarmour(asciihexdecode), _unarmour(ascii85decode)
    return {
        b"FlateDecode": _inflate,
        b"Fl": _inflate,
        b"LZWDecode": _unlzw,
        b"LZW": _unlzw,
        b"RunLengthDecode": _unrun,
        b"RL": _unrun,
        b"ASCIIHexDecode": hexed,
        b"AHx": hexed,
        b"ASCII85Decode": a85,
        b"A85": a85,
    }


def _refuse_bombs(data: bytes, source: str) -> None:
    """Refuse a PDF whose streams inflate past ``MAX_PDF_INFLATED_BYTES`` before pdfminer inflates them whole."""
    if inflated_size(data, MAX_PDF_INFLATED_BYTES) > MAX_PDF_INFLATED_BYTES:
        raise ArticleError(
            f"{source}: refused: the PDF's compressed streams inflate to more than "
            f"{megabytes(MAX_PDF_INFLATED_BYTES)} (the file is {megabytes(len(data))}: a compression bomb?)"
        )


def _declared_pages(document: object) -> int:
    """Return the page count the PDF's page tree declares (its root's ``/Count``), 0 when it declares none."""
    from pdfminer.pdftypes import resolve1

    try:
        pages = resolve1(document.catalog.get("Pages"))  # type: ignore[attr-defined]
        count = resolve1(pages.get("Count")) if isinstance(pages, dict) else 0
    except Exception:  # a damaged catalog declares nothing
        return 0
    return count if isinstance(count, int) and count > 0 else 0


def read_pdf(data: bytes, source: str) -> PdfText:
    """Return the paragraphs of a PDF's text layer, in reading order, with their pages.

    Raises:
        ArticleError: when the PDF is damaged, encrypted, or has no text layer (a scan).
    """
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams, LTTextContainer
    from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import PDFStream, resolve1

    _refuse_bombs(data, source)
    pages: list[list[str]] = []
    missing: list[int] = []  # pages whose content stream is named but cannot be found
    declared = 0
    started = time.monotonic()
    try:
        parser = PDFParser(io.BytesIO(data))
        document = PDFDocument(parser)
        title, author = _metadata(document)
        declared = _declared_pages(document)
        resources = PDFResourceManager()
        device = PDFPageAggregator(resources, laparams=LAParams())
        interpreter = PDFPageInterpreter(resources, device)
        for page in PDFPage.create_pages(document):
            if len(pages) == MAX_PDF_PAGES:
                raise ArticleError(f"{source}: refused: the PDF has more than {MAX_PDF_PAGES} pages")
            if time.monotonic() - started > MAX_PDF_SECONDS:
                raise ArticleError(
                    f"{source}: refused: reading the PDF took more than {MAX_PDF_SECONDS:g} s "
                    f"(stopped at page {len(pages) + 1})"
                )
            if "Contents" in page.attrs and not any(isinstance(resolve1(c), PDFStream) for c in page.contents):
                missing.append(len(pages) + 1)
            interpreter.process_page(page)
            layout = device.get_result()
            boxes = [_box_text(e) for e in layout if isinstance(e, LTTextContainer)]
            pages.append([b for b in boxes if b])
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise ArticleError(f"{source}: the PDF is encrypted; save an unprotected copy and add that") from None
    except ArticleError:
        raise
    except Exception as exc:  # pdfminer raises many kinds of error on damaged files
        raise ArticleError(f"{source}: not a readable PDF ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not pages and declared:
        raise ArticleError(
            f"{source}: the PDF is damaged: its page tree declares {declared} page{'s' if declared > 1 else ''} "
            "but none can be found; open and save it again (print to PDF) and add that copy"
        )
    if not pages:
        raise ArticleError(f"{source}: the PDF has no pages")
    if missing and not any(pages):
        listed = ", ".join(str(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ArticleError(
            f"{source}: the PDF is damaged: the content of page{'s' if len(missing) > 1 else ''} {listed} "
            "cannot be found (a broken cross-reference table?); open and save it again and add that copy"
        )
    if not any(pages):
        raise ArticleError(
            f"{source}: the PDF has no text layer (a scan or images of text); run OCR on it first, e.g. ocrmypdf"
        )
    running = _running_lines(pages)
    paragraphs: list[str] = []
    numbers: list[int] = []
    for number, boxes in enumerate(pages, start=1):
        first = True
        for box in boxes:
            if _PAGE_NUMBER.match(box) or _DIGITS.sub("#", box) in running:
                continue
            if first and paragraphs and not paragraphs[-1].endswith(_TERMINAL) and box[:1].islower():
                paragraphs[-1] = f"{paragraphs[-1]} {box}"  # a paragraph that runs on from the page before
            else:
                paragraphs.append(box)
                numbers.append(number)
            first = False
    return PdfText(tuple(paragraphs), tuple(numbers), len(pages), title, author)


def article_from_pdf(data: bytes, source: str) -> Article:
    """Read a PDF into an :class:`Article` whose ``pages`` give each paragraph's page.

    Raises:
        ArticleError: when the PDF cannot be read, has no text layer, or holds no text.
    """
    pdf = read_pdf(data, source)
    cleaned = clean_blocks(pdf.paragraphs)
    pages = tuple(pdf.pages[i] for i in cleaned.origins)
    return article_from_cleaned(cleaned, source, author=pdf.author, pages=pages)
