"""SIGTERM to a real ``citebot add`` of a long PDF while it reads the PDF and while it loads the model and embeds:
it exits within a couple of seconds with one line and status 143, and the library is as before."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from index.store.catalog import Catalog
from index.store.library import CATALOG, VECTORS
from tests.support.paths import CITEBOT
from tests.support.pdf_samples import report_pdf, story

pytestmark = pytest.mark.slow  # runs real citebot processes

#: What the process maps once it reads a PDF (pdfminer imports cryptography) and once it loads the model.
PHASES = {"reading": "cryptography/hazmat/bindings/_rust", "embedding": "onnxruntime"}


def _env(data: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(data), NO_COLOR="1")
    return environment


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library holding the bundled article and a long PDF (80 pages, about 2,600 sentences), made once."""
    folder = tmp_path_factory.mktemp("sigterm")
    made = subprocess.run([CITEBOT, "index"], capture_output=True, text=True, env=_env(folder / "data"), timeout=300)
    assert made.returncode == 0, made.stderr
    paragraphs = [f"{text} (Section {n}.)" for n in range(40) for text in story("report")]
    report_pdf(folder / "big.pdf", paragraphs, page_break_every=len(story("report")) // 2)
    return folder


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time process ``pid`` has used (user and system), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mapped(pid: int, marker: str) -> bool:
    """Return whether process ``pid`` has a file whose path holds ``marker`` mapped into memory."""
    try:
        return marker in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_sigterm_during_a_long_pdf_add_stops_promptly_and_changes_nothing(
    template: Path, tmp_path: Path, phase: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(template / "data", data)
    before = sorted(p.name for p in (data / VECTORS).iterdir())
    child = subprocess.Popen(
        [CITEBOT, "add", str(template / "big.pdf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(data),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while not _mapped(child.pid, PHASES[phase]):
        assert child.poll() is None, f"citebot finished before it reached {phase}: {child.communicate()}"
        assert time.monotonic() < deadline, f"citebot never reached {phase}"
        time.sleep(0.02)
    if phase == "embedding":  # the model loads in well under a second of CPU; then it embeds for about 20 s
        loaded = _cpu_seconds(child.pid) + 1.5
        while _cpu_seconds(child.pid) < loaded:
            assert child.poll() is None, f"citebot finished before it embedded: {child.communicate()}"
            time.sleep(0.02)
    signalled = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    took = time.monotonic() - signalled
    assert took < 2.5, f"{took:.1f} s after SIGTERM"
    assert child.returncode == 128 + signal.SIGTERM, (child.returncode, err)
    said = [line for line in re.split(r"[\r\n]|(?=citebot: )", err) if line.strip()]
    lines = [line for line in said if not line.startswith("Batches:")]  # sentence-transformers' bar, unchanged
    assert len(lines) == 1 and lines[0].startswith("citebot: stopped by SIGTERM"), err
    assert "Traceback" not in err and out == ""

    catalog = Catalog(data / CATALOG, readonly=True)
    try:
        assert sorted(catalog.keys().values()) == [1]
    finally:
        catalog.close()
    cleaned = subprocess.run([CITEBOT, "remove", "1"], capture_output=True, text=True, env=_env(data), timeout=60)
    assert cleaned.returncode == 0, cleaned.stderr  # the next writer
    assert before == ["1.npy"] and not list((data / VECTORS).iterdir())  # nothing this add left behind
