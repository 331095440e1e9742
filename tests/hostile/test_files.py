"""Hostile files (issue 14, section 3): PDF compression bombs and damaged page trees, pathological Markdown.

The bombs run in the real ``citebot`` under a memory limit and a time-out, as they would hit a user.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from index.errors import ArticleError
from index.reading import pdf
from index.reading.ingest import parse_article, read_article
from index.reading.pdf import read_pdf
from tests.support.paths import CITEBOT
from tests.support.pdf_samples import handmade_pdf, one_page_pdf, report_pdf, zlib_bomb_pdf

pytestmark = pytest.mark.slow  # runs real citebot processes


def _citebot_limited(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``citebot ARGS`` with at most 3 GB of address space and a private data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env.update({"CITEBOT": CITEBOT, "CITEBOT_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"})
    script = 'ulimit -v 3000000; "$CITEBOT" "$@"'
    return subprocess.run(
        ["bash", "-c", script, "citebot", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
    )


def _one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error:") and message in lines[0], result.stderr


# --- PDF bombs --------------------------------------------------------------------------------------------------


def test_a_pdf_zlib_bomb_is_refused_quickly_by_the_real_command(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(zlib_bomb_pdf(800 * 1024 * 1024))  # under 2.5 MB on disk, 800 MB of drawing operators inside
    started = time.monotonic()
    result = _citebot_limited(tmp_path, "add", "bomb.pdf")
    _one_line_error(result, "the PDF's compressed streams inflate to more than 50 MB")
    assert time.monotonic() - started < 60


def test_many_small_streams_that_add_up_are_refused(tmp_path: Path) -> None:
    import zlib

    piece = zlib.compress(b"BT /F1 12 Tf 72 700 Td (more) Tj ET\n" * 30_000, 9)  # about 1 MB inflated each
    streams = [b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(piece) + piece + b"\nendstream"] * 60
    refs = b" ".join(b"%d 0 R" % (5 + i) for i in range(len(streams)))
    data = handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents [" + refs + b"]"
            b" /Resources << /Font << /F1 4 0 R >> >> >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            *streams,
        ]
    )
    assert len(data) < 1024 * 1024
    started = time.monotonic()
    with pytest.raises(ArticleError, match="inflate to more than 50 MB"):
        read_pdf(data, "many.pdf")
    assert time.monotonic() - started < 20


def test_a_small_honest_pdf_is_still_read() -> None:
    text = b"BT /F1 12 Tf 72 700 Td (The harbour reopened on Friday after the storm.) Tj ET"
    assert read_pdf(one_page_pdf(__import__("zlib").compress(text), compressed=True), "ok.pdf").paragraphs == (
        "The harbour reopened on Friday after the storm.",
    )


def test_pages_and_time_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = report_pdf(tmp_path / "report.pdf")  # four pages
    monkeypatch.setattr(pdf, "MAX_PDF_PAGES", 2)
    with pytest.raises(ArticleError, match="refused: the PDF has more than 2 pages"):
        read_article(path)
    monkeypatch.setattr(pdf, "MAX_PDF_PAGES", 1000)
    monkeypatch.setattr(pdf, "MAX_PDF_SECONDS", 1e-9)
    with pytest.raises(ArticleError, match=r"refused: reading the PDF took more than 1e-09 s \(stopped at page"):
        read_article(path)


# --- damaged page trees get their real reason ---------------------------------------------------------------------

CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        ([CATALOG, b"<< /Type /Pages /Kids [9 0 R] /Count 1 >>"], "page tree declares 1 page but none can be found"),
        ([CATALOG, b"<< /Type /Pages /Kids [2 0 R] /Count 3 >>"], "page tree declares 3 pages but none can be found"),
        (
            [
                CATALOG,
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 9 0 R >>",
            ],
            "the content of page 1 cannot be found",
        ),
    ],
)
def test_a_damaged_page_tree_is_named_not_called_a_scan(objects: list[bytes], reason: str) -> None:
    with pytest.raises(ArticleError) as info:
        read_pdf(handmade_pdf(objects), "broken.pdf")
    assert "the PDF is damaged" in str(info.value) and reason in str(info.value)
    assert "text layer" not in str(info.value) and "OCR" not in str(info.value)


def test_a_damaged_pdf_is_one_line_from_the_real_command(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(handmade_pdf([CATALOG, b"<< /Type /Pages /Kids [9 0 R] /Count 1 >>"]))
    _one_line_error(_citebot_limited(tmp_path, "add", "broken.pdf"), "the PDF is damaged")


# --- Markdown: reading is linear in the input ----------------------------------------------------------------------


def _table(rows: int) -> str:
    head = "# Levels\n\nThe river rose overnight.\n\n| station | level | change |\n|---|---:|:-:|\n"
    return head + "".join(f"| Station {i} | {i % 7}.{i % 10} | +{i % 3} |\n" for i in range(rows)) + "\nIt fell.\n"


def _wide_table(rows: int) -> str:
    cells = 40
    head = "Before.\n\n" + "|" + "|".join(f"h{c}" for c in range(cells)) + "|\n|" + "|".join(["---"] * cells) + "|\n"
    return head + "".join("|" + "|".join(f"v{r}" for _ in range(cells)) + "|\n" for r in range(rows // 10))


PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    "table": _table,
    "wide table": _wide_table,
    "table rows without pipes": lambda n: "Intro.\n\na | b\n--|--\n" + "".join(f"x{i} | y{i}\n" for i in range(n)),
    "nested brackets": lambda n: "[" * n + "a" + "]" * n + "\n",
    "emphasis openers": lambda n: "Intro " + "*a " * n + "\n",
    "nested lists": lambda n: "".join("  " * (i % 40) + "- item\n" for i in range(n)),
}


def test_a_3_mb_markdown_table_is_read_in_seconds() -> None:
    text = _table(110_000)
    assert len(text) > 3_000_000
    started = time.monotonic()
    article = parse_article(text.encode(), "levels.md")
    took = time.monotonic() - started
    assert article.text == "The river rose overnight.\n\nIt fell."
    assert took < 15, took  # 202 s before


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        with contextlib.suppress(ArticleError):  # some of these hold no prose; the time is what counts
            parse_article(text.encode(), "big.md")
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("kind", list(PATHOLOGICAL))
def test_markdown_reading_time_grows_linearly(kind: str) -> None:
    make = PATHOLOGICAL[kind]
    small = 4000
    while _seconds(make(small)) < 0.05 and small < 1_000_000:
        small *= 2  # big enough that timer noise does not decide
    ratio = _seconds(make(4 * small)) / _seconds(make(small))
    assert ratio < 10, f"{kind}: 4x the input took {ratio:.1f}x the time (quadratic would be 16x)"
