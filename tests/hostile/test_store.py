"""Hostile damage to the library on disk: a truncated or corrupted catalog, a tampered row, a file where the vectors
folder was, a full disk, a read-only library; and what ``add``/``refresh`` print and load. Real ``citebot`` runs."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from index.store.library import CATALOG, VECTORS
from tests.support.mounts import remount_read_only, tmpfs
from tests.support.news_server import NewsServer, file

QUESTION = "Which two roads meet at Saraqeb?"
BAKERY = "Village bakery\n\nThe bakery on Mill Street opened in 1952.\n\nIts rye bread sells out by nine.\n"
LOCAL = {"CITEBOT_FETCH_ALLOW_PRIVATE": "1", "CITEBOT_FETCH_TIMEOUT": "3"}


def _one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _library(run_citebot, tmp_path: Path) -> Path:
    """Make the run_citebot library (the bundled article) and return its directory."""
    made = run_citebot("index")
    assert made.returncode == 0, made.stderr
    return tmp_path / "cli-data"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_an_empty_catalog_is_refused_and_the_vectors_are_kept(run_citebot, tmp_path: Path) -> None:
    data = _library(run_citebot, tmp_path)
    vectors = _files(data / VECTORS)
    (data / CATALOG).write_bytes(b"")  # truncated to 0 bytes
    for command in (("ask", QUESTION), ("list",), ("add", "x.txt")):
        (tmp_path / "x.txt").write_text(BAKERY)
        _one_error_line(run_citebot(*command), str(data / CATALOG), "0 bytes", "restore it from a backup")
    assert (data / CATALOG).stat().st_size == 0  # no new library started over it
    assert _files(data / VECTORS) == vectors  # and nothing deleted as an orphan


def test_a_corrupted_page_of_the_catalog_is_reported_in_one_line(run_citebot, tmp_path: Path) -> None:
    data = _library(run_citebot, tmp_path)
    (tmp_path / "bakery.txt").write_text(BAKERY)
    assert run_citebot("add", "bakery.txt").returncode == 0
    catalog = data / CATALOG
    size = catalog.stat().st_size
    assert size >= 8 * 4096 and not Path(f"{catalog}-wal").exists()
    page = random.Random(7).randrange(2, size // 4096)  # one 4 kB page, not the header's
    with catalog.open("r+b") as handle:
        handle.seek(page * 4096)
        handle.write(random.Random(page).randbytes(4096))
    listed = run_citebot("list")
    _one_error_line(listed, str(catalog), "is damaged", "backup")
    asked = run_citebot("ask", QUESTION)
    _one_error_line(asked, str(catalog), "is damaged", "backup")
    assert "Traceback" not in asked.stderr + listed.stderr


def test_a_negative_sentence_count_is_repaired_once(run_citebot, tmp_path: Path) -> None:
    data = _library(run_citebot, tmp_path)
    with contextlib.closing(sqlite3.connect(data / CATALOG)) as db, db:
        db.execute("UPDATE articles SET sentences = -5")
    first = run_citebot("ask", QUESTION)
    assert first.returncode == 0, first.stderr
    assert "M4 and M5" in first.stdout
    warnings = first.stderr.strip().splitlines()
    assert len(warnings) == 1 and "damaged" in warnings[0], first.stderr
    second = run_citebot("ask", QUESTION)
    assert second.returncode == 0 and second.stderr == "", second.stderr
    assert "M4 and M5" in second.stdout


def test_a_file_in_place_of_the_vectors_folder_is_one_line(run_citebot, tmp_path: Path) -> None:
    data = _library(run_citebot, tmp_path)
    folder = data / VECTORS
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("not a folder\n")
    _one_error_line(run_citebot("ask", QUESTION), str(folder), "not a directory")
    assert folder.read_text() == "not a folder\n"


def test_list_on_a_data_directory_that_cannot_exist_is_an_error(run_citebot, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file\n")
    for where in ("/etc/passwd/x", str(tmp_path / "afile" / "below"), str(tmp_path / "afile")):
        _one_error_line(run_citebot("list", env={"CITEBOT_DATA_DIR": where}), where, "CITEBOT_DATA_DIR")
    fresh = run_citebot("list", env={"CITEBOT_DATA_DIR": str(tmp_path / "not" / "yet")})
    assert fresh.returncode == 0 and "is new" in fresh.stdout


def test_add_prints_results_on_stdout_one_whole_line_each(run_citebot, tmp_path: Path) -> None:
    title = "A village bakery on Mill Street that has sold the same rye bread every morning since it opened"
    (tmp_path / "bakery.txt").write_text(BAKERY.replace("Village bakery", title))
    added = run_citebot("add", "bakery.txt", "missing.txt", env={"COLUMNS": "80"})
    assert added.returncode == 2
    (line,) = added.stdout.splitlines()
    assert line.startswith(f"added [2] {title} (2 paragraphs") and len(line) > 80
    _one_error_line(added, "missing.txt")
    again = run_citebot("add", "bakery.txt", env={"COLUMNS": "80"})
    assert again.returncode == 0 and again.stdout.startswith(f"already in the library: [2] {title} (")


def _heavy_after(argv: list[str], data: Path, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """Run ``citebot argv`` in a fresh Python; return the heavy modules it imported (it must exit 0)."""
    probe = (
        "import sys; from bot.terminal.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sentence_transformers')), "
        "file=sys.stderr); sys.exit(code)"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(data), NO_COLOR="1", **(env or {}))
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return eval(result.stderr.strip().splitlines()[-1])  # our own probe's list of module names


def test_adding_what_the_library_has_and_a_quiet_refresh_never_load_the_model(run_citebot, tmp_path: Path) -> None:
    data = _library(run_citebot, tmp_path)
    (tmp_path / "bakery.txt").write_text(BAKERY)
    assert run_citebot("add", "bakery.txt").returncode == 0
    assert _heavy_after(["add", "bakery.txt"], data, tmp_path) == []
    with NewsServer({"/news/harbour.html": file("harbour.html", ETag='"1"')}) as server:
        assert run_citebot("add", server.url("/news/harbour.html"), env=LOCAL).returncode == 0
        assert _heavy_after(["refresh"], data, tmp_path, LOCAL) == []
    listed = json.loads(run_citebot("list", "--json").stdout)
    assert [a["id"] for a in listed] == [1, 2, 3]


# --- a full disk and a read-only library: a small file system of our own (needs root to mount) -------------------


def test_a_full_disk_during_add_is_one_line_and_the_library_stays_whole(run_citebot, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "3m") as small:
        env = {"CITEBOT_DATA_DIR": str(small / "data")}
        assert run_citebot("index", env=env).returncode == 0
        ships = (f"Ship {i} carried {i} tonnes of grain to port {i}." for i in range(120))
        long = "Shipping log\n\n" + "\n\n".join(ships)
        (tmp_path / "ships.txt").write_text(long)
        stat = os.statvfs(small)
        filler = small / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 32 * 1024))
        full = run_citebot("add", str(tmp_path / "ships.txt"), env=env)
        _one_error_line(full, "no space left", "library is unchanged")
        assert "Traceback" not in full.stderr
        assert [p for p in (small / "data" / VECTORS).iterdir() if p.name.startswith(".")] == []
        filler.unlink()
        asked = run_citebot("ask", QUESTION, env=env)
        assert asked.returncode == 0 and "M4 and M5" in asked.stdout, asked.stderr
        listed = json.loads(run_citebot("list", "--json", env=env).stdout)
        assert [a["id"] for a in listed] == [1]
        again = run_citebot("add", str(tmp_path / "ships.txt"), env=env)
        assert again.returncode == 0 and again.stdout.startswith("added [2] Shipping log"), again.stderr


def test_a_read_only_library_can_still_be_asked(run_citebot, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "8m") as mount:
        env = {"CITEBOT_DATA_DIR": str(mount / "data")}
        assert run_citebot("index", env=env).returncode == 0
        remount_read_only(mount)
        asked = run_citebot("ask", QUESTION, env=env)
        assert asked.returncode == 0, asked.stderr
        assert "M4 and M5" in asked.stdout
        (tmp_path / "bakery.txt").write_text(BAKERY)
        _one_error_line(run_citebot("add", "bakery.txt", env=env), str(mount / "data"), "not writable")
