"""Hostile input to the article reader (issue 7): size caps that hold for pipes and devices, odd files and encodings.

Each case runs through the library and through the real ``citebot`` command; every refusal is one line, exit code 2.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from index.errors import ArticleError
from index.reading import ingest
from index.reading.ingest import read_article
from tests.support.paths import CITEBOT

pytestmark = pytest.mark.slow  # runs real citebot processes

STORY = "The harbour reopened on Friday after the storm. Fishing boats returned to the quay the same afternoon.\n"


def _one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("citebot: error:") and message in lines[0], lines[0]


def _bash(tmp_path: Path, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash (for process substitution) with ``$CITEBOT`` set and a private data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env.update({"CITEBOT": CITEBOT, "CITEBOT_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"})
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
    )


# --- the size cap holds while reading -------------------------------------------------------------------------


def test_dev_zero_is_refused_as_a_device() -> None:
    with pytest.raises(ArticleError, match="is a character device, not an article file"):
        read_article("/dev/zero")


def test_an_endless_pipe_hits_the_cap_without_eating_memory(tmp_path: Path) -> None:
    result = _bash(tmp_path, 'ulimit -v 4000000; "$CITEBOT" ask "Who?" --article <(cat /dev/zero)')
    _one_line_error(result, "too large (more than 5 MB")


def test_a_pipe_past_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text(STORY * 60_000)  # about 6 MB, over the 5 MB cap
    result = _bash(tmp_path, '"$CITEBOT" ask "Who?" --article <(cat big.txt)')
    _one_line_error(result, "too large")


def test_a_fifo_is_read_up_to_the_cap_and_no_further(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_ARTICLE_BYTES", 1000)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    written: list[int] = []

    def writer() -> None:
        try:
            with open(fifo, "wb") as handle:
                for _ in range(1000):
                    handle.write(STORY.encode())
                    handle.flush()
                    written.append(1)
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=writer)
    thread.start()
    with pytest.raises(ArticleError, match="too large"):
        read_article(fifo)
    thread.join(timeout=10)
    assert not thread.is_alive() and len(written) < 1000  # the reader hung up early


def test_a_small_pipe_is_an_article(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread = threading.Thread(target=lambda: fifo.write_text(STORY))
    thread.start()
    article = read_article(fifo)
    thread.join(timeout=10)
    assert article.text == STORY.strip()


# --- files that are not articles --------------------------------------------------------------------------------


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ArticleError, match="is a socket"):
            read_article(path)


def test_symlink_loops_and_broken_links_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    with pytest.raises(ArticleError, match="symlink loop"):
        read_article(tmp_path / "a.txt")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(ArticleError, match="broken symlink"):
        read_article(tmp_path / "gone.txt")


# --- encodings ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "story.txt"
    path.write_bytes("Café owners in Zürich said the harbour reopened.\n".encode(codec))
    assert read_article(path).text == "Café owners in Zürich said the harbour reopened."


@pytest.mark.parametrize(
    ("codec", "text", "iconv_name"),
    [
        ("latin-1", "Le café a rouvert près du port à Noël.\n", "LATIN1"),
        ("cp1252", "The \u201charbour\u201d reopened \u2013 at last.\n", "WINDOWS-1252"),
    ],
)
def test_the_encoding_hint_names_the_encoding_and_a_working_iconv_command(
    tmp_path: Path, codec: str, text: str, iconv_name: str
) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes(text.encode(codec))
    with pytest.raises(ArticleError) as info:
        read_article(path)
    message = str(info.value)
    assert f"iconv -f {iconv_name} -t UTF-8" in message and "\n" not in message
    if shutil.which("iconv"):
        command = message.split("convert it with ", 1)[1]
        subprocess.run(command, shell=True, check=True, cwd=tmp_path)
        assert read_article(tmp_path / "converted.txt").text == text.strip()


# --- the same through the real command -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "article", "message"),
    [
        (None, "/dev/zero", "is a character device"),
        (None, "/dev/null", "is a character device"),
        ("loop", "a.txt", "symlink loop"),
        ("latin1", "l1.txt", "iconv -f LATIN1 -t UTF-8"),
    ],
)
def test_cli_reading_errors_are_one_line(
    run_citebot, tmp_path: Path, setup: str | None, article: str, message: str
) -> None:
    if setup == "loop":
        (tmp_path / "a.txt").symlink_to("a.txt")
    elif setup == "latin1":
        (tmp_path / "l1.txt").write_bytes("Café au lait à Paris.".encode("latin-1"))
    result = run_citebot("ask", "Who?", "--article", article)
    _one_line_error(result, message)
    assert "Traceback" not in result.stderr


def test_cli_reads_utf16_without_a_bom(run_citebot, tmp_path: Path) -> None:
    (tmp_path / "u16.txt").write_bytes(STORY.encode("utf-16-le"))
    result = run_citebot("ask", "When did the harbour reopen?", "--article", "u16.txt", "--json")
    assert result.returncode == 0, result.stderr
    assert "reopened on Friday" in result.stdout
