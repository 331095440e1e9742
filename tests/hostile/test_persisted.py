"""Hostile damage to the persisted search index (``search/``, derived data read as untrusted): a named pipe in place
of ``index.npz``, a member declaring an absurd shape, a zip bomb, a faiss file of random bytes or with random bytes
written into it. Real ``citebot ask`` and ``citebot doctor`` runs, each with a deadline and its peak memory measured:
``ask`` gives the right answer after one warning and a rebuild, ``doctor`` one problem line, and neither hangs,
tracebacks or inflates what the catalog does not need."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.reading.article import article_from_paragraphs
from index.search import persisted
from index.search.retrieve import Searcher
from index.store.library import VECTORS, Library
from tests.support.citebot import Measured, run_measured
from tests.support.search_index import rewrite_member

BAKERY = ["The bakery on Mill Street opened in 1952.", "Its rye bread sells out by nine every morning."]
HARBOUR = ["The harbour of Port Ellis handles grain and timber.", "Fog closes the harbour mouth on twenty mornings."]
ORCHARD = ["The orchard above the village grows twelve kinds of apple.", "Its cider press runs every October."]
QUESTION = "When does the rye bread sell out?"
#: What a ``citebot`` run may take, at most, over a sound run's peak memory (the zip bomb below inflates to 1 GiB).
MEMORY_MB = 250
#: A run that takes longer than this has hung (a sound ``ask`` takes a few seconds).
DEADLINE = 60


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A library of four articles (the bundled one and three small ones) whose search index was persisted."""
    directory = tmp_path_factory.mktemp("persisted") / "library"
    library = Library(directory, IndexConfig(data_dir=directory))
    library.ensure_ready(embedder)
    for paragraphs, name in ((BAKERY, "bakery"), (HARBOUR, "harbour"), (ORCHARD, "orchard")):
        library.add(article_from_paragraphs(paragraphs, title=name.title(), source=f"/x/{name}.txt"), embedder)
    searcher = Searcher(Library(directory, IndexConfig(data_dir=directory)), embedder)
    assert searcher.index.made["persisted"] == 1
    searcher.library.close()
    library.close()
    return directory


@pytest.fixture(scope="module")
def sound_peak_mb(built: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    """The peak RSS of a ``citebot ask`` of the sound library (what the damaged runs are measured against)."""
    where = tmp_path_factory.mktemp("sound")
    shutil.copytree(built, where / "cli-data")
    sound = run_measured(where, "ask", "--json", QUESTION, timeout=DEADLINE)
    assert sound.returncode == 0 and sound.stderr == "", sound.stderr
    return sound.peak_mb


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built library, where ``run_measured`` looks for it (``CITEBOT_DATA_DIR``)."""
    directory = tmp_path / "cli-data"
    shutil.copytree(built, directory)
    return directory


# --- the damage ----------------------------------------------------------------------------------------------------


def _named_pipe(folder: Path) -> None:
    """``index.npz`` replaced by a named pipe: opening it for reading waits for a writer that never comes."""
    (folder / persisted.STATE).unlink()
    os.mkfifo(folder / persisted.STATE)


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _huge_shape(folder: Path) -> None:
    """A member whose header declares 10^14 float64 values (728 TiB), its data unchanged."""

    def write(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
        data = content[len(_npy_header("<f8", (1,))) :]  # the header of a short 1-D array is one 64-byte block
        archive.writestr(name, _npy_header("<f8", (10**14,)) + data, compress_type=zipfile.ZIP_STORED)

    rewrite_member(folder, "library_paragraph_length.npy", write)


def _zip_bomb(folder: Path) -> None:
    """A member deflated from 1 GiB of zeros (about 4 MB in the file), its header declaring all of them."""

    def write(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
        with archive.open(name, "w", force_zip64=True) as member:
            member.write(_npy_header("<f8", (2**27,)))
            zeros = bytes(1 << 24)
            for _ in range(64):
                member.write(zeros)

    rewrite_member(folder, "library_paragraph_length.npy", write)


def _faiss_random(folder: Path) -> None:
    """The faiss file replaced by as many random bytes."""
    (path,) = folder.glob("vectors-*.faiss")
    path.write_bytes(os.urandom(path.stat().st_size))


def _faiss_scribbled(folder: Path) -> None:
    """Random bytes written into the faiss file past its header (among the stored vectors): faiss still reads it."""
    (path,) = folder.glob("vectors-*.faiss")
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        handle.write(os.urandom(64))


DAMAGE = [_named_pipe, _huge_shape, _zip_bomb, _faiss_random, _faiss_scribbled]


# --- what citebot makes of it --------------------------------------------------------------------------------------


def _sound(run: Measured, peak_mb: float, sound_peak_mb: float) -> None:
    """Assert ``run`` ended by itself, without a traceback, within ``MEMORY_MB`` of a sound run's memory."""
    assert not run.killed, f"still running after {DEADLINE} s: {run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert peak_mb < sound_peak_mb + MEMORY_MB, (peak_mb, sound_peak_mb)


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__.strip("_") for d in DAMAGE])
def test_damaged_search_index_doctor_says_so_and_ask_rebuilds_it(
    data: Path, tmp_path: Path, damage: Callable[[Path], None], sound_peak_mb: float
) -> None:
    folder = data / persisted.FOLDER
    vectors = sorted(p.name for p in (data / VECTORS).iterdir())
    damage(folder)

    doctor = run_measured(tmp_path, "doctor", timeout=DEADLINE)
    _sound(doctor, doctor.peak_mb, sound_peak_mb)
    assert doctor.returncode == 1, doctor.stdout
    (line,) = [line for line in doctor.stdout.splitlines() if line.startswith("problem:")]
    assert line.startswith(f"problem: search index: {folder} is damaged:") and "builds it again" in line, line
    assert not [line for line in doctor.stdout.splitlines() if line.startswith("ok: search index")]

    asked = run_measured(tmp_path, "ask", "--json", QUESTION, timeout=DEADLINE)
    _sound(asked, asked.peak_mb, sound_peak_mb)
    assert asked.returncode == 0, asked.stderr
    (warning,) = asked.stderr.strip().splitlines()
    assert "search index" in warning and "damaged" in warning and "rebuilding it" in warning, warning
    reply = json.loads(asked.stdout)
    assert reply["found"] and reply["passages"][0]["text"] == BAKERY[1], reply

    assert (folder / persisted.STATE).is_file()  # rebuilt in its place, and sound again:
    again = run_measured(tmp_path, "ask", "--json", QUESTION, timeout=DEADLINE)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert json.loads(again.stdout)["passages"][0]["text"] == BAKERY[1]
    healthy = run_measured(tmp_path, "doctor", timeout=DEADLINE)
    (line,) = [line for line in healthy.stdout.splitlines() if line.startswith("ok: search index:")]
    assert "4 of 4 articles current" in line and "checksums verified" in line, line
    assert sorted(p.name for p in (data / VECTORS).iterdir()) == vectors  # the library itself untouched


def test_a_named_pipe_in_place_of_a_vector_file_is_damage_not_a_hang(
    data: Path, tmp_path: Path, sound_peak_mb: float
) -> None:
    bakery = next(r for r in Library(data, IndexConfig(data_dir=data)).records() if r.title == "Bakery")
    path = data / VECTORS / f"{bakery.key}.npy"
    path.unlink()
    os.mkfifo(path)
    doctor = run_measured(tmp_path, "doctor", timeout=DEADLINE)
    _sound(doctor, doctor.peak_mb, sound_peak_mb)
    (line,) = [line for line in doctor.stdout.splitlines() if line.startswith("problem:")]
    assert line.startswith("problem: vectors: article") and "not a regular file" in line, line
    asked = run_measured(tmp_path, "ask", "--json", QUESTION, timeout=DEADLINE)
    _sound(asked, asked.peak_mb, sound_peak_mb)
    (warning,) = asked.stderr.strip().splitlines()
    assert "damaged" in warning and "not a regular file" in warning, warning
    assert json.loads(asked.stdout)["passages"][0]["text"] == BAKERY[1]
    assert path.is_file()  # embedded again, written in its place
