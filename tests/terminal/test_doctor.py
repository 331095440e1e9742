"""``citebot doctor``: a healthy library passes (exit 0); each kind of damage or misconfiguration is one problem line
(exit 1) that says what to do; the token never shows; doctor never writes to the data directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.terminal.doctor import check_answer_model
from index.analysis.answer_model import DEFAULT_DIRECTORY, MODEL_FILE, TOKENIZER_FILE
from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.search import persisted
from index.search.retrieve import Searcher
from index.store.library import Library
from tests.support.search_index import rewrite_stamp

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A new library as the first question leaves it: the bundled article, its catalog and vector file."""
    directory = tmp_path_factory.mktemp("doctor") / "library"
    library = Library(directory, IndexConfig(data_dir=directory))
    library.ensure_ready(embedder)
    library.close()
    return directory


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built library, where ``run_citebot`` looks for it (``CITEBOT_DATA_DIR``)."""
    directory = tmp_path / "cli-data"
    shutil.copytree(built, directory)
    return directory


def _snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under ``directory``: its modification time and content hash."""
    out = {}
    for path in sorted([directory, *directory.rglob("*")]):
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(directory))] = (path.stat().st_mtime_ns, content)
    return out


def _lines(result: subprocess.CompletedProcess[str], status: str, check: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{status}: {check}:")]


def test_healthy_library_exit_0_and_nothing_written(run_citebot: Run, data: Path) -> None:
    before = _snapshot(data)
    result = run_citebot("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "all is well"
    assert not [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert _lines(result, "ok", "catalog") and _lines(result, "ok", "vectors") and _lines(result, "ok", "imports")
    assert "CITEBOT_DATA_DIR = " + str(data) + " (environment)" in result.stdout
    assert "CITEBOT_TOP_K = 3 (default)" in result.stdout
    assert _lines(result, "note", "telegram token") == [
        "note: telegram token: TELEGRAM_BOT_TOKEN is not set (needed only for citebot telegram)"
    ]
    assert _snapshot(data) == before


def test_json_report(run_citebot: Run, data: Path) -> None:
    (data / "vectors" / "1.npy").unlink()
    result = run_citebot("doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"] == 1
    (problem,) = [c for c in report["checks"] if c["status"] == "problem"]
    assert problem["check"] == "vectors" and "1.npy missing" in problem["message"] and problem["fix"]


def test_truncated_catalog(run_citebot: Run, data: Path) -> None:
    catalog = data / "library.sqlite3"
    catalog.write_bytes(catalog.read_bytes()[: catalog.stat().st_size // 2])
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "catalog")
    assert "library.sqlite3 is damaged" in line and "fix: restore the data directory from a backup" in line
    assert result.stdout.splitlines()[-1] == "1 problem found"


def _page_of(catalog: Path, table: str) -> int:
    """Return the first page of ``table``'s b-tree (1-based)."""
    with sqlite3.connect(catalog) as db:
        return int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


def test_corrupted_page(run_citebot: Run, data: Path) -> None:
    catalog = data / "library.sqlite3"
    page = _page_of(catalog, "articles")
    raw = bytearray(catalog.read_bytes())
    size = int.from_bytes(raw[16:18], "big")
    start = (page - 1) * size
    raw[start : start + 64] = b"\xa5" * 64  # the b-tree page header and cell pointers
    catalog.write_bytes(bytes(raw))
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "catalog")
    assert "is damaged" in line


def test_missing_and_altered_vector_files(run_citebot: Run, data: Path) -> None:
    vectors = data / "vectors" / "1.npy"
    content = vectors.read_bytes()
    vectors.write_bytes(content[:-4] + bytes(4))
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "vectors")
    assert "article 1 (" in line and "1.npy does not match its checksum" in line
    assert "embeds it again" in line
    vectors.unlink()
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "vectors")
    assert "article 1 (" in line and "1.npy missing" in line


def test_orphan_vector_file_reported_not_deleted(run_citebot: Run, data: Path) -> None:
    """A vector file with a key the catalog never gave out is not a crash's leftover (that is a note, see
    tests/hostile/test_crash.py): the catalog is not this library's own, a problem; nothing is deleted."""
    orphan = data / "vectors" / "99.npy"
    shutil.copy(data / "vectors" / "1.npy", orphan)
    before = _snapshot(data)
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "vectors")
    assert "1 file in" in line and "99.npy" in line and "never gave out" in line and "backup" in line
    assert orphan.is_file()
    assert _snapshot(data) == before


def test_bad_setting_is_a_problem_not_an_error(run_citebot: Run, data: Path) -> None:
    result = run_citebot("doctor", env={"CITEBOT_TOP_K": "0"})
    assert result.returncode == 1, result.stderr
    (line,) = _lines(result, "problem", "setting")
    assert line.startswith("problem: setting: CITEBOT_TOP_K='0' is not valid: expected a whole number from 1 to 20")
    assert "correct or unset CITEBOT_TOP_K (set in environment)" in line
    assert _lines(result, "ok", "catalog")  # the other checks still ran, with the default


def test_bad_setting_in_dot_env(run_citebot: Run, data: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CITEBOT_MIN_SCORE=high\nCITEBOT_WINDOW=3\n", encoding="utf-8")
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "setting")
    assert "CITEBOT_MIN_SCORE='high' is not valid" in line and "(set in .env)" in line
    assert "ok: setting: CITEBOT_WINDOW = 3 (.env)" in result.stdout


def test_malformed_token_never_shown(run_citebot: Run, data: Path) -> None:
    token = "123456789:Zq7-secretish_Kx"
    result = run_citebot("doctor", env={"TELEGRAM_BOT_TOKEN": token})
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "telegram token")
    assert "not a bot token" in line and "@BotFather" in line
    for shown in (
        result.stdout,
        result.stderr,
        run_citebot("doctor", "--json", env={"TELEGRAM_BOT_TOKEN": token}).stdout,
    ):
        assert "secretish" not in shown and "123456789" not in shown


def test_well_formed_token_not_shown(run_citebot: Run, data: Path) -> None:
    token = "987654321:" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456_-"
    assert len(token.split(":")[1]) == 35
    result = run_citebot("doctor", env={"TELEGRAM_BOT_TOKEN": token})
    assert result.returncode == 0, result.stdout
    assert _lines(result, "ok", "telegram token")
    assert "AbCdEf" not in result.stdout and "987654321" not in result.stdout


def test_missing_model_directory(run_citebot: Run, data: Path) -> None:
    result = run_citebot("doctor", env={"CITEBOT_MODEL": "/nonexistent"})
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "model files")
    assert "CITEBOT_MODEL=/nonexistent: no such directory" in line and "fix: set CITEBOT_MODEL to" in line


def test_damaged_chat_state(run_citebot: Run, data: Path) -> None:
    (data / "bot.sqlite3").write_bytes(b"this is not a database" * 100)
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "chat state")
    assert "bot.sqlite3" in line and "move the file aside" in line


def test_onnx_export_absent_whole_and_damaged_without_torch(
    run_citebot: Run, data: Path, tmp_path: Path, embedder: Embedder
) -> None:
    cache = tmp_path / "xdg"  # an empty cache: the default model's export is not there yet
    env = {"XDG_CACHE_HOME": str(cache)}
    result = run_citebot("doctor", env=env)
    (line,) = _lines(result, "note", "onnx model")
    assert "not exported to ONNX yet" in line and str(cache / "citebot" / "models") in line
    assert not cache.exists()  # doctor exported nothing

    exported = embedder._onnx.path.parent  # type: ignore[union-attr]  # a whole export, as a first question leaves it
    directory = cache / "citebot" / "models" / exported.name
    shutil.copytree(exported, directory)
    result = run_citebot("doctor", env=env)
    assert result.returncode == 0, result.stdout
    (line,) = _lines(result, "ok", "onnx model")
    assert str(directory) in line and "whole" in line

    weights = directory / "model.onnx.data"
    with weights.open("r+b") as f:  # bytes flipped in the middle: the size is right, the SHA-256 is not
        f.seek(weights.stat().st_size // 2)
        chunk = f.read(4096)
        f.seek(weights.stat().st_size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    probe = (
        "import sys\nfrom bot.terminal.cli import main\ncode = main(['doctor'])\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', "
        "'sentence_transformers'}), code)"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update({"CITEBOT_DATA_DIR": str(data), "NO_COLOR": "1", **env})
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300
    )
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("problem: onnx model:")]
    assert "damaged" in line and "exports it again" in line
    assert done.stdout.splitlines()[-1] == "HEAVY [] 1"  # a problem found, and no torch imported to find it


def test_search_index_absent_current_and_damaged(run_citebot: Run, data: Path, embedder: Embedder) -> None:
    result = run_citebot("doctor")
    (line,) = _lines(result, "note", "search index")
    assert "not written yet" in line
    searcher = Searcher(Library(data, IndexConfig(data_dir=data)), embedder)
    assert searcher.index.made["persisted"] == 1  # a first question writes it
    searcher.library.close()
    result = run_citebot("doctor", "--deep")
    (line,) = _lines(result, "ok", "search index")
    assert "1 of 1 articles current" in line and "faiss file loads" in line
    state = data / "search" / "index.npz"
    state.write_bytes(state.read_bytes()[:1000])
    before = _snapshot(data)
    result = run_citebot("doctor")
    assert result.returncode == 1
    (line,) = _lines(result, "problem", "search index")
    assert "is damaged" in line and "builds it again" in line
    assert _snapshot(data) == before  # reported, not repaired or deleted


def test_answer_model_present_missing_and_damaged(tmp_path: Path) -> None:
    assert check_answer_model(deep=True).status == "ok"
    assert check_answer_model(directory=tmp_path).status == "problem"
    assert "about.json is missing" in check_answer_model(directory=tmp_path).message
    for name in ("about.json", TOKENIZER_FILE):
        (tmp_path / name).write_bytes((DEFAULT_DIRECTORY / name).read_bytes())
    assert MODEL_FILE in check_answer_model(directory=tmp_path).message
    (tmp_path / MODEL_FILE).write_bytes(b"garbage")
    damaged = check_answer_model(directory=tmp_path)  # caught by its SHA-256, without loading it
    assert damaged.status == "problem" and MODEL_FILE in damaged.message
    assert "\n" not in damaged.message


def test_search_index_of_another_format_is_noted_not_checked(run_citebot: Run, data: Path, embedder: Embedder) -> None:
    searcher = Searcher(Library(data, IndexConfig(data_dir=data)), embedder)
    assert searcher.index.made["persisted"] == 1
    searcher.library.close()
    rewrite_stamp(data / persisted.FOLDER, lambda stamp: stamp.update(format=persisted.FORMAT + 1))
    result = run_citebot("doctor")
    assert result.returncode == 0, result.stdout  # nothing wrong: another version wrote it, the next question rebuilds
    assert not _lines(result, "ok", "search index") and not _lines(result, "problem", "search index")
    (line,) = _lines(result, "note", "search index")
    assert "not checked" in line and f"format {persisted.FORMAT + 1}" in line and "builds it again" in line, line
