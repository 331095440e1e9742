"""PDFs made for the tests and benchmarks with reportlab: a multi-page report, a two-column page, a scan."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import SOURCES as DATA

HEADINGS = {"Annual water quality report", "Treatment and supply", "Lead in drinking water", "Outlook for 2025"}


def story(name: str = "report") -> list[str]:
    """Return the paragraphs of a story as written (``tests/data/sources/NAME.story.txt``)."""
    return [p.strip() for p in (DATA / f"{name}.story.txt").read_text().split("\n\n") if p.strip()]


def _styles() -> tuple[object, object]:
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=sheet["BodyText"], fontSize=10.5, leading=14, spaceAfter=9)
    head = ParagraphStyle("head", parent=sheet["Heading2"], spaceBefore=6, spaceAfter=6)
    return body, head


def _furniture(canvas: object, doc: object) -> None:
    """Draw a running header and a page-number footer on every page."""
    from reportlab.lib.pagesizes import A4

    width, height = A4
    canvas.saveState()  # type: ignore[attr-defined]
    canvas.setFont("Helvetica", 8)  # type: ignore[attr-defined]
    canvas.drawString(72, height - 40, "Kilbride Water Utility - Water quality report 2024")  # type: ignore[attr-defined]
    canvas.drawRightString(width - 72, 30, f"Page {doc.page}")  # type: ignore[attr-defined]
    canvas.restoreState()  # type: ignore[attr-defined]


def report_pdf(path: Path, paragraphs: list[str] | None = None, page_break_every: int = 4) -> Path:
    """Write a one-column, multi-page report of ``paragraphs`` (default: the report story) with header and footer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    body, head = _styles()
    flow: list[object] = []
    for i, text in enumerate(paragraphs or story("report")):
        if i and i % page_break_every == 0:
            flow.append(PageBreak())
        flow.append(Paragraph(text, head if text in HEADINGS else body))
    SimpleDocTemplate(str(path), pagesize=A4, title="Water quality report 2024", author="Kilbride Water").build(
        flow, onFirstPage=_furniture, onLaterPages=_furniture
    )
    return path


def two_column_pdf(path: Path, paragraphs: list[str] | None = None) -> Path:
    """Write the story in two columns per page, as newsletters and papers are laid out."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import BaseDocTemplate, Frame, PageBreak, PageTemplate, Paragraph

    body, head = _styles()
    width, height = A4
    gap, margin = 24, 60
    column = (width - 2 * margin - gap) / 2
    frames = [
        Frame(margin, margin, column, height - 2 * margin, id="left"),
        Frame(margin + column + gap, margin, column, height - 2 * margin, id="right"),
    ]
    doc = BaseDocTemplate(str(path), pagesize=A4)
    doc.addPageTemplates([PageTemplate(id="two", frames=frames, onPage=_furniture)])
    flow: list[object] = []
    for i, text in enumerate(paragraphs or story("report")):
        if i and text == "Lead in drinking water":
            flow.append(PageBreak())
        flow.append(Paragraph(text, head if text in HEADINGS else body))
    doc.build(flow)
    return path


def scanned_pdf(path: Path) -> Path:
    """Write a PDF whose page is only an image of text (a scan): it has no text layer."""
    from PIL import Image, ImageDraw
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(image).text((20, 80), "This page was scanned: it is only a picture of words.", fill=0)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.drawImage(ImageReader(image), 72, 500, width=450, height=150)
    pdf.showPage()
    pdf.save()
    return path


def out_of_order_pdf(path: Path, paragraphs: list[str] | None = None) -> Path:
    """Write one page whose paragraphs are drawn bottom first: the content stream's order is not the reading order."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    from reportlab.platypus import Paragraph

    body, _ = _styles()
    texts = (paragraphs or story("report"))[1:5]
    width, height = A4
    placed = []
    top = height - 72
    for text in texts:
        para = Paragraph(text, body)
        _, h = para.wrap(width - 144, height)
        placed.append((para, top - h))
        top -= h + 16
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for para, y in reversed(placed):
        para.drawOn(pdf, 72, y)
    pdf.showPage()
    pdf.save()
    return path


def handmade_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """Return a PDF assembled by hand from ``objects`` (object ``i + 1`` is ``objects[i]``), with a correct xref."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def one_page_pdf(content: bytes, compressed: bool = False) -> bytes:
    """Return a one-page PDF (Helvetica) whose page content stream is ``content``, raw or already deflated."""
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content, b"/Filter /FlateDecode" if compressed else b""),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def zlib_bomb_pdf(inflated: int) -> bytes:
    """Return a small PDF whose one content stream inflates to ``inflated`` bytes of text-drawing operators."""
    import zlib

    line = b"BT /F1 12 Tf 72 700 Td (The harbour reopened on Friday.) Tj ET\n"
    block = line * (1024 * 1024 // len(line))
    packer = zlib.compressobj(9)
    parts = [packer.compress(block) for _ in range(max(1, inflated // len(block)))]
    parts.append(packer.flush())
    return one_page_pdf(b"".join(parts), compressed=True)


def lzw_zeros(codes: int) -> bytes:
    """Return an LZW stream (PDF's ``/LZWDecode``, early change) of ``codes`` codes that decodes to NUL bytes only.

    Each code names the longest string the table has, so the output grows to about 3,800 bytes per 12-bit code once
    the table is full: a few hundred kilobytes decode to gigabytes.
    """
    bits = 0
    count = 0
    out = bytearray()

    def emit(code: int, width: int) -> None:
        nonlocal bits, count
        bits = (bits << width) | code
        count += width
        while count >= 8:
            count -= 8
            out.append((bits >> count) & 0xFF)
        bits &= (1 << count) - 1

    emit(256, 9)  # clear
    emit(0, 9)  # the first code after a clear adds no entry
    table, width = 258, 9
    for _ in range(codes):
        emit(min(table, 4095), width)  # the entry being made (prev + its first byte), then the longest one
        table += 1
        width = {511: 10, 1023: 11, 2047: 12}.get(table, width)
    if count:
        emit(0, 8 - count)
    return bytes(out)


def filtered_pdf(content: bytes, filters: bytes, *more: bytes) -> bytes:
    """Return a one-page PDF whose content stream is ``content`` as stored, under ``/Filter filters``; ``more`` are
    objects 6, 7... (such as the filter array an indirect ``filters`` names)."""
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content, b"/Filter " + filters),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            *more,
        ]
    )


def deflated_zeros(megabytes: int) -> bytes:
    """Return a zlib stream that inflates to ``megabytes`` MiB of NUL bytes, made in well under a second.

    One mebibyte is deflated once (a full flush makes the piece independent of what came before) and repeated.
    """
    import struct
    import zlib

    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush()
    checksum = 1
    for _ in range(megabytes):
        checksum = zlib.adler32(block, checksum)
    return b"\x78\xda" + piece * megabytes + end + struct.pack(">I", checksum)
