"""Measure how well citebot reads its sources: paragraphs kept and boilerplate leaked, PDF readers, fetch time.

    .venv/bin/python -m benchmarks.sources [--runs N]

For pages and PDFs written for the tests (``tests/data/sources``; the PDFs are generated with reportlab), it
compares the extracted story paragraphs (the title apart) with the story as written: precision is the share of
extracted paragraphs that are story paragraphs (1 - boilerplate leaked), recall the share of story paragraphs
extracted word for word, and order the share of story paragraphs in the right order (longest run in order).
PDFs are read with pdfminer.six (what citebot uses) and, when the ``bench`` extra is installed, with pypdf
(page text, paragraphs guessed by the plain-text cleaner). Then it times fetch + parse of URLs served by
a local server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import bisect
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from index.reading.article import Article
from index.reading.clean import clean_text
from index.reading.fetch import FetchConfig, article_from_fetched, fetch
from index.reading.ingest import parse_article, read_article
from tests.support.news_server import NewsServer, file, page
from tests.support.pdf_samples import out_of_order_pdf, report_pdf, story, two_column_pdf

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sources"
LOCAL = FetchConfig(allow_private=True)


def extracted(article: Article) -> list[str]:
    """The article's story paragraphs, in order (the title is checked on its own)."""
    return [article.paragraph(i) for i in range(len(article.paragraphs))]


def _norm(text: str) -> str:
    return " ".join(text.split())


def score(got: list[str], want: list[str]) -> dict[str, float]:
    """Paragraph precision, recall and order of ``got`` against the story as written."""
    wanted = {_norm(p): i for i, p in enumerate(want)}
    hits = [wanted[_norm(p)] for p in got if _norm(p) in wanted]
    tails: list[int] = []  # longest increasing run of story positions: paragraphs in the right order
    for position in hits:
        k = bisect.bisect_left(tails, position)
        tails[k : k + 1] = [position]
    return {
        "precision": len(set(hits)) / len(got) if got else 0.0,
        "recall": len(set(hits)) / len(want),
        "order": len(tails) / len(want),
    }


def pypdf_paragraphs(path: Path) -> list[str] | None:
    """Paragraphs as pypdf would give them to citebot (page text through the plain-text cleaner), if installed."""
    try:
        import pypdf
    except ImportError:
        return None
    reader = pypdf.PdfReader(str(path))
    cleaned = clean_text("\n\n".join(p.extract_text() or "" for p in reader.pages))
    return list(cleaned.paragraphs)


def _row(name: str, reader: str, result: dict[str, float], extra: str = "") -> None:
    print(
        f"{name:<22} {reader:<10} {result['precision']:>9.2f} {result['recall']:>6.2f} {result['order']:>6.2f}  {extra}"
    )


def measure_reading() -> None:
    """Print paragraph precision, recall and order for pages, Markdown, text and PDFs."""
    print(f"{'source':<22} {'reader':<10} {'precision':>9} {'recall':>6} {'order':>6}")
    for name in ("harbour", "wire", "bzip2", "council", "release"):
        held_out = "(written after the code, not tuned)" if name in ("council", "release") else ""
        article = read_article(DATA / f"{name}.html")
        _row(f"{name}.html", "citebot", score(extracted(article), story(name)), held_out)
    _row("river.md", "citebot", score(extracted(read_article(DATA / "river.md")), story("river")))
    lines = "\n".join(story("harbour")).encode()
    _row("harbour, 1 para/line", "citebot", score(extracted(parse_article(lines, "lines.txt")), story("harbour")))
    with tempfile.TemporaryDirectory() as tmp:
        pdfs: dict[str, tuple[Path, list[str]]] = {
            "report.pdf (4 pages)": (report_pdf(Path(tmp) / "report.pdf"), story("report")[1:]),
            "two-column.pdf": (two_column_pdf(Path(tmp) / "columns.pdf"), story("report")[1:]),
            "out-of-order.pdf": (out_of_order_pdf(Path(tmp) / "shuffled.pdf"), story("report")[1:5]),
        }
        for name, (path, want) in pdfs.items():
            started = time.perf_counter()
            article = read_article(path)
            took = time.perf_counter() - started
            _row(name, "pdfminer", score(extracted(article), want), f"{1000 * took:.0f} ms")
            started = time.perf_counter()
            other = pypdf_paragraphs(path)
            took = time.perf_counter() - started
            if other is not None:
                _row(name, "pypdf", score(other, want), f"{1000 * took:.0f} ms")
        if pypdf_paragraphs(pdfs["report.pdf (4 pages)"][0]) is None:
            print("(pypdf not installed: pip install -e '.[bench]' to compare)")


def _timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def measure_fetching(runs: int) -> None:
    """Print the time to fetch and parse URLs from a local server (median and slowest of ``runs``)."""
    with tempfile.TemporaryDirectory() as tmp:
        pdf = report_pdf(Path(tmp) / "report.pdf").read_bytes()
        routes = {f"/{n}.html": file(f"{n}.html") for n in ("harbour", "wire", "bzip2", "paywall")}
        routes["/report.pdf"] = page(pdf, "application/pdf")
        with NewsServer(routes) as server:
            print(f"\n{'URL (127.0.0.1)':<22} {'bytes':>7} {'fetch+parse median':>19} {'slowest':>8}")
            for path in ("/harbour.html", "/wire.html", "/bzip2.html", "/report.pdf"):
                url = server.url(path)
                size = len(fetch(url, LOCAL).body)  # type: ignore[union-attr]
                median, worst = _timed(lambda url=url: article_from_fetched(fetch(url, LOCAL)), runs)
                print(f"{path:<22} {size:>7} {1000 * median:>16.0f} ms {1000 * worst:>5.0f} ms")
            try:
                article_from_fetched(fetch(server.url("/paywall.html"), LOCAL))
                print("paywall.html: NOT refused")
            except Exception as exc:  # the expected FetchError
                print(f"paywall.html: refused: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="fetches per URL for the timing (default 10)")
    args = parser.parse_args()
    measure_reading()
    measure_fetching(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
