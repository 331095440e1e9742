"""PDFs: the text layer in reading order with page numbers; headers, footers and scans handled."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.errors import ArticleError
from index.reading.article import Article
from index.reading.ingest import read_article
from index.reading.pdf import read_pdf
from tests.support.pdf_samples import HEADINGS, out_of_order_pdf, report_pdf, scanned_pdf, story, two_column_pdf


def paragraphs(article: Article) -> list[str]:
    return [article.paragraph(i) for i in range(len(article.paragraphs))]


def test_a_multi_page_report_keeps_its_paragraphs_and_their_pages(tmp_path: Path) -> None:
    article = read_article(report_pdf(tmp_path / "report.pdf"))
    written = story("report")
    assert article.title == written[0] == "Annual water quality report"
    assert paragraphs(article) == written[1:]
    assert article.pages is not None and len(article.pages) == len(article.paragraphs)
    # report_pdf starts a new page every four paragraphs (the title is the first of page 1).
    expected = [1 + (i + 1) // 4 for i in range(len(written) - 1)]
    assert list(article.pages) == expected
    assert article.page(len(article.paragraphs) - 1) == 4
    assert article.author == "Kilbride Water"


def test_running_headers_and_page_numbers_are_dropped(tmp_path: Path) -> None:
    pdf = read_pdf(report_pdf(tmp_path / "report.pdf").read_bytes(), "report.pdf")
    assert pdf.page_count == 4
    text = "\n".join(pdf.paragraphs)
    assert "Water quality report 2024" not in text and "Page 2" not in text


def test_two_columns_are_read_column_by_column(tmp_path: Path) -> None:
    article = read_article(two_column_pdf(tmp_path / "columns.pdf"))
    assert paragraphs(article) == story("report")[1:]
    assert set(article.pages or ()) == {1, 2}


def test_reading_order_follows_the_page_not_the_content_stream(tmp_path: Path) -> None:
    article = read_article(out_of_order_pdf(tmp_path / "shuffled.pdf"))
    assert paragraphs(article) == story("report")[1:5]


def test_headings_stay_paragraphs_of_their_own(tmp_path: Path) -> None:
    article = read_article(report_pdf(tmp_path / "report.pdf"))
    assert HEADINGS - {article.title} <= set(paragraphs(article))


def test_a_scan_without_a_text_layer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match="no text layer") as info:
        read_article(scanned_pdf(tmp_path / "scan.pdf"))
    assert "\n" not in str(info.value)


def test_damaged_and_encrypted_pdfs_are_refused_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF")
    with pytest.raises(ArticleError) as info:
        read_article(broken)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(broken))
    from reportlab.pdfgen import canvas

    locked = tmp_path / "locked.pdf"
    pdf = canvas.Canvas(str(locked), encrypt="secret")
    pdf.drawString(72, 720, "A locked report about the river.")
    pdf.save()
    with pytest.raises(ArticleError, match="encrypted"):
        read_article(locked)


def test_the_cli_refuses_a_scan_before_loading_the_model(run_citebot, tmp_path: Path) -> None:
    scanned_pdf(tmp_path / "scan.pdf")
    result = run_citebot("ask", "What does the report say?", "--article", "scan.pdf")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "citebot: error: scan.pdf: the PDF has no text layer (a scan or images of text); "
        "run OCR on it first, e.g. ocrmypdf"
    ]


def test_the_cli_answers_from_a_pdf(run_citebot, tmp_path: Path) -> None:
    report_pdf(tmp_path / "report.pdf")
    result = run_citebot("ask", "How many tests met the national standard?", "--article", "report.pdf", "--json")
    assert result.returncode == 0, result.stderr
    assert "18,391 met the national standard" in result.stdout


def test_a_paragraph_running_on_to_the_next_page_is_one_paragraph_on_its_first_page(tmp_path: Path) -> None:
    sentence = (
        "The survey found that most homes built before 1970 still had lead supply pipes, and that replacing them "
    )
    long = " ".join([sentence + "would take several years of work."] * 30)
    written = story("report")
    article = read_article(report_pdf(tmp_path / "span.pdf", [*written[:3], long, *written[3:5]], page_break_every=100))
    assert paragraphs(article)[2] == long
    assert article.pages == (1, 1, 1, 2, 2)
