"""PDF: the text layer of a PDF as paragraphs in reading order, each with its page number.

pdfminer.six does the layout analysis: it groups characters into lines and
lines into text boxes (paragraphs), and orders the boxes by position, columns
included (README, "Sources", has the measurements against pypdf). Running
headers and footers (a line repeated at the top or bottom of most pages) and
bare page numbers are dropped; a paragraph that runs on to the next page is
joined and keeps its first page. A PDF with no text layer (a scan) is refused.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

from index.errors import ArticleError
from index.reading.article import Article, article_from_cleaned
from index.reading.clean import clean_blocks

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

    pages: list[list[str]] = []
    try:
        parser = PDFParser(io.BytesIO(data))
        document = PDFDocument(parser)
        title, author = _metadata(document)
        resources = PDFResourceManager()
        device = PDFPageAggregator(resources, laparams=LAParams())
        interpreter = PDFPageInterpreter(resources, device)
        for page in PDFPage.create_pages(document):
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
    if not pages:
        raise ArticleError(f"{source}: the PDF has no pages")
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
