"""Hostile use of the library on disk: processes racing each other, and a catalog whose numbers were tampered with.

The racing processes are real (python subprocesses and the installed ``citebot``), on real files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.analysis.embed import Embedder
from index.answer import answer
from index.config import IndexConfig
from index.search.retrieve import Searcher
from index.store.catalog import Catalog
from index.store.library import CATALOG, VECTORS, Library
from tests.support.paths import CITEBOT, ROOT

pytestmark = pytest.mark.slow  # runs real citebot processes

QUESTION = "Which two roads meet at Saraqeb?"

#: Adds and removes the article at argv[2] in the library argv[1], argv[3] times; writes argv[4] when done.
WRITER = """
import sys
from pathlib import Path
from index.config import IndexConfig
from index.analysis.embed import Embedder
from index.reading.ingest import read_article
from index.store.library import Library
data_dir, article, times, done = Path(sys.argv[1]), read_article(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
embedder = Embedder()
for _ in range(times):
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    record = library.add(article, embedder).record
    library.remove([record.id])
    library.close()
done.write_text("done")
"""

#: Opens the library argv[1] and asks until argv[2] exists, half the time through a fresh Library; prints what it saw.
READER = """
import json, sys
from collections import Counter
from pathlib import Path
from index.answer import answer
from index.config import IndexConfig
from index.analysis.embed import Embedder
from index.store.library import Library
from index.search.retrieve import Searcher

data_dir, stop = Path(sys.argv[1]), Path(sys.argv[2])
embedder, seen = Embedder(), Counter()
kept = Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)
n = 0
while not stop.exists() or n < 20:
    n += 1
    try:
        searcher = kept if n % 2 else Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)
        top = answer(searcher, "Which two roads meet at Saraqeb?").passages[0]
        seen["M4 and M5" in top.text] += 1
    except Exception as exc:
        seen[f"{type(exc).__name__}: {exc}"] += 1
print(json.dumps(seen))
"""


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env.update(CITEBOT_DATA_DIR=str(data_dir), NO_COLOR="1")
    return env


def _records(data_dir: Path) -> list:
    catalog = Catalog(data_dir / CATALOG)
    try:
        return catalog.records()
    finally:
        catalog.close()


def test_four_first_runs_at_once_seed_the_library_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runs = [
        subprocess.Popen(
            [CITEBOT, "index"], env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert "articles    1" in out
    assert len(_records(data_dir)) == 1
    assert len(list((data_dir / VECTORS).iterdir())) == 1  # embedded once, not four times


def test_four_processes_adding_the_same_article_at_once_add_it_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert subprocess.run([CITEBOT, "index"], env=_env(data_dir), capture_output=True, timeout=600).returncode == 0
    (tmp_path / "bakery.txt").write_text(
        "Village bakery\n\nThe bakery opened in 1952.\n\nIts bread sells out by nine.\n"
    )
    runs = [
        subprocess.Popen(
            [CITEBOT, "add", "bakery.txt"],
            env=_env(data_dir),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    messages = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        messages.append(out)
    assert sum("added [2] Village bakery" in m for m in messages) == 1
    assert sum("already in the library: [2] Village bakery" in m for m in messages) == 3
    assert [r.id for r in _records(data_dir)] == [1, 2]


def test_readers_keep_answering_while_a_writer_adds_and_removes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert subprocess.run([CITEBOT, "index"], env=_env(data_dir), capture_output=True, timeout=600).returncode == 0
    article = tmp_path / "ships.txt"
    article.write_text("Shipping log\n\n" + "\n\n".join(f"Ship {i} carried grain on day {i}." for i in range(30)))
    stop = tmp_path / "stop"
    python = [sys.executable, "-c"]
    readers = [
        subprocess.Popen([*python, READER, str(data_dir), str(stop)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    writer = subprocess.run(
        [*python, WRITER, str(data_dir), str(article), "8", str(stop)], cwd=ROOT, capture_output=True, text=True
    )
    assert writer.returncode == 0, writer.stderr
    for reader in readers:
        out, _ = reader.communicate(timeout=600)
        seen = json.loads(out)
        assert set(seen) == {"true"}, seen  # every answer right, never an error
        assert seen["true"] >= 20


@pytest.mark.parametrize(("mean", "std"), [(-3.0, 0.05), (5.0, 0.05), (0.1, math.inf), (0.1, -1.0)])
def test_a_tampered_background_is_damage_warned_once_and_measured_again(
    embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture, mean: float, std: float
) -> None:
    data_dir = tmp_path / "data"
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    searcher = Searcher(library, embedder)
    assert answer(searcher, QUESTION).found
    with library.catalog.transaction() as db:
        db.execute("UPDATE articles SET background_mean = ?, background_std = ?", (mean, std))
    reopened = Library(data_dir, IndexConfig(data_dir=data_dir))
    with caplog.at_level(logging.WARNING):
        result = answer(Searcher(reopened, embedder), QUESTION)
        again = answer(Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder), QUESTION)
    assert result.found and again.found and "M4 and M5" in result.passages[0].text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "\n" not in warnings[0]
    (record,) = reopened.records()
    assert 0 < record.background_mean < 0.5 and 0 < record.background_std < 0.5
    assert not answer(Searcher(reopened, embedder), "How do I bake sourdough bread?").found
