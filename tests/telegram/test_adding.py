"""Reading a file a local Bot API server names (``TELEGRAM_LOCAL_FILES_DIR``): regular files only, checked by the
descriptor opened, never blocking, never past the cap."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from bot.telegram.library import MAX_DOWNLOAD, _read_local
from index.errors import CitebotError

MB = 1024 * 1024


def test_a_named_pipe_is_refused_without_waiting_for_a_writer_or_reading_what_it_is_fed(tmp_path: Path) -> None:
    """A pipe fed 60 MB was read whole (RSS 228 -> 916 MB) although the cap is 20 MB; one nobody wrote to froze."""
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    fed: list[int] = []

    def feed() -> None:
        with contextlib.suppress(OSError), open(pipe, "wb") as writer:  # waits for a reader to open the pipe
            for _ in range(60):
                writer.write(b"x" * MB)
                fed.append(MB)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with pytest.raises(CitebotError, match=r"^it is not a regular file$"):
            _read_local(pipe, tmp_path)
    finally:
        with contextlib.suppress(OSError):  # let a feeder still waiting for a reader go
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join(10)
    assert sum(fed) < MAX_DOWNLOAD


def test_a_directory_is_refused_and_a_regular_file_only_up_to_the_cap(tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    with pytest.raises(CitebotError, match=r"^it is not a regular file$"):
        _read_local(tmp_path / "documents", tmp_path)
    big = tmp_path / "documents" / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_DOWNLOAD + 1)
    with pytest.raises(CitebotError, match=r"^it is larger than 20 MB$"):
        _read_local(big, tmp_path)
    exact = tmp_path / "documents" / "exact.txt"
    exact.write_bytes(b"a" * 1000)
    assert _read_local(exact, tmp_path) == b"a" * 1000
