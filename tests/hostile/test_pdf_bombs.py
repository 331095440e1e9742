"""PDF bombs the first scan did not see (issue 23): a stream deflated twice, an LZW stream, a deflate bomb under an
ASCII armour, run-length bombs. Each is refused by the real ``citebot add`` in one line, quickly, in bounded memory
(the child's peak RSS is measured); honest PDFs under the same filters are still read."""

from __future__ import annotations

import binascii
import time
import zlib
from pathlib import Path

import pytest

from index.reading.pdf import MAX_PDF_INFLATED_BYTES, read_pdf
from tests.support.citebot import run_measured
from tests.support.pdf_samples import deflated_zeros, filtered_pdf, lzw_zeros

#: The most memory a refusal may take (measured: 170 MB, the command's imports; each bomb inflates to over 1 GB).
PEAK_RSS_LIMIT = 400 * 1024 * 1024
TEXT = b"BT /F1 12 Tf 72 700 Td (The harbour reopened on Friday after the storm.) Tj ET"


def _run_measured(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[int, str, int]:
    """Run ``citebot ARGS`` under a 3 GB address-space limit; return its exit status, stderr and peak RSS in bytes."""
    run = run_measured(tmp_path, *args, timeout=timeout, address_space=3_000_000_000)
    if run.killed:
        pytest.fail(f"citebot {' '.join(args)} did not finish within {timeout:g} s")
    return run.returncode, run.stderr, int(run.peak_mb * 1024 * 1024)


BOMBS = {
    "flate-twice": lambda: filtered_pdf(zlib.compress(deflated_zeros(2048), 9), b"[/FlateDecode /FlateDecode]"),
    "lzw": lambda: filtered_pdf(lzw_zeros(300_000), b"/LZWDecode"),
    "hex-armoured-flate": lambda: filtered_pdf(
        binascii.hexlify(deflated_zeros(2048)) + b">", b"[/ASCIIHexDecode /FlateDecode]"
    ),
    "run-length": lambda: filtered_pdf(b"\x81\x00" * 2_000_000 + b"\x80", b"/RunLengthDecode"),
    "abbreviated-lzw-then-flate": lambda: filtered_pdf(lzw_zeros(300_000), b"[/LZW /Fl]"),
    "indirect-filter": lambda: filtered_pdf(
        zlib.compress(deflated_zeros(2048), 9), b"6 0 R", b"[/FlateDecode /FlateDecode]"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_pdf_bomb_behind_other_filters_is_refused_quickly_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    data = BOMBS[kind]()
    assert len(data) < 5 * 1024 * 1024  # under the file cap: the bomb is the inflation, not the file
    (tmp_path / "bomb.pdf").write_bytes(data)
    started = time.monotonic()
    status, stderr, peak = _run_measured(tmp_path, "add", "bomb.pdf")
    elapsed = time.monotonic() - started
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("citebot: error: bomb.pdf: refused: the PDF's compressed streams inflate"), stderr
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 1e6:.0f} MB"
    assert elapsed < 20, f"{elapsed:.1f} s"


@pytest.mark.parametrize(
    ("stored", "filters"),
    [
        (zlib.compress(zlib.compress(TEXT)), b"[/FlateDecode /FlateDecode]"),
        (binascii.hexlify(zlib.compress(TEXT)) + b">", b"[/AHx /Fl]"),
        (zlib.compress(TEXT), b"[/FlateDecode]"),
    ],
)
def test_an_honest_pdf_under_several_filters_is_still_read(stored: bytes, filters: bytes) -> None:
    assert read_pdf(filtered_pdf(stored, filters), "ok.pdf").paragraphs == (
        "The harbour reopened on Friday after the storm.",
    )


def test_the_limit_is_the_one_the_message_names() -> None:
    assert MAX_PDF_INFLATED_BYTES == 50 * 1024 * 1024  # "more than 50 MB" in the messages above and in docs
