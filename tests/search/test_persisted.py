"""The persisted search index: a second process opens it instead of reading and hashing every vector file, notices
what changed since, and rebuilds (one warning) what is damaged, with the same answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from index.analysis.embed import Embedder
from index.answer import Answer, answer
from index.config import IndexConfig
from index.reading.article import Article, article_from_paragraphs
from index.search import library_index, persisted
from index.search.library_index import ARRAYS, ArticleData, LibraryIndex
from index.search.retrieve import Searcher
from index.store import library as library_module
from index.store.library import VECTORS, Library
from tests.support.search_index import rewrite_stamp

BAKERY = ["The bakery on Mill Street opened in 1952.", "Its rye bread sells out by nine every morning."]
HARBOUR = [
    "The harbour of Port Ellis handles grain and timber.",
    "Fog closes the harbour mouth on about twenty mornings a year.",
]
ORCHARD = ["The orchard above the village grows twelve kinds of apple.", "Its cider press runs every October."]
QUESTIONS = (
    "When does the rye bread sell out?",
    "What does the harbour of Port Ellis handle?",
    "How often is the harbour closed by fog?",
    "When was the bakery opened?",
)


def _article(paragraphs: list[str], source: str, title: str) -> Article:
    return article_from_paragraphs(paragraphs, title=title, source=source)


def _open(data_dir: Path, embedder: Embedder) -> Searcher:
    """A fresh library object and searcher, as a new process makes them."""
    return Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)


def _answers(searcher: Searcher) -> list[tuple[bool, list[tuple[str, float]]]]:
    results: list[Answer] = [answer(searcher, q) for q in QUESTIONS]
    return [(r.found, [(p.text, round(p.score, 6)) for p in r.passages]) for r in results]


@pytest.fixture
def data_dir(tmp_path: Path, embedder: Embedder) -> Path:
    """A library on disk: the bundled article and two more, opened once (so its search index is persisted)."""
    directory = tmp_path / "data"
    library = Library(directory, IndexConfig(data_dir=directory))
    library.ensure_ready(embedder)
    library.add(_article(BAKERY, "/x/bakery.txt", "Village bakery"), embedder)
    library.add(_article(HARBOUR, "/x/harbour.txt", "Port Ellis harbour"), embedder)
    first = _open(directory, embedder)
    assert first.index.made == {"restored": 0, "read": 3, "persisted": 1}
    return directory


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The keys of the vector files read and hashed (every call of the library's ``load_vectors``)."""
    calls: list[int] = []
    real = library_module.load_vectors

    def counting(path: Path, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(int(path.stem))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(library_module, "load_vectors", counting)
    return calls


def test_a_second_open_hashes_no_vector_file_and_answers_the_same(
    data_dir: Path, embedder: Embedder, hashed: list[int]
) -> None:
    before = _answers(_open(data_dir, embedder))  # the first opener built it; this one restores it
    hashed.clear()
    second = _open(data_dir, embedder)
    assert second.index.made == {"restored": 3, "read": 0, "persisted": 0}
    assert hashed == []
    assert _answers(second) == before
    assert before[0][0] and before[0][1][0][0] == BAKERY[1]


def test_a_restored_article_is_the_article_computed_afresh(data_dir: Path, embedder: Embedder) -> None:
    fresh = Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)
    fresh._index = LibraryIndex(fresh.library, embedder)
    fresh._index._restore = lambda records: None  # type: ignore[method-assign]  # read every file, as before
    built = fresh.index
    restored = _open(data_dir, embedder).index
    assert restored.made["restored"] == 3 and built.made["read"] == 3
    for key, data in built.articles.items():
        again = restored.articles[key]
        assert isinstance(again, ArticleData)
        assert set(vars(again)) == set(vars(data))  # nothing __post_init__ derives is missing
        for name in (*ARRAYS, "vectors"):
            mine, theirs = getattr(again, name), getattr(data, name)
            pairs = zip(mine, theirs, strict=True) if isinstance(theirs, tuple) else [(mine, theirs)]
            for a, b in pairs:
                assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert (again.text, again.paragraphs, again.pages, again.record) == (
            data.text,
            data.paragraphs,
            data.pages,
            data.record,
        )
    for name in ("paragraph_key", "paragraph_local", "paragraph_length", "alive", "_paragraph_df", "_totals"):
        assert np.array_equal(getattr(restored, name), getattr(built, name)), name
    assert restored.base == built.base and restored.vocabulary == built.vocabulary


def _damage_state(folder: Path) -> None:
    path = folder / persisted.STATE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_state(folder: Path) -> None:
    path = folder / persisted.STATE
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # same size; the zip's CRC-32 catches it
    path.write_bytes(bytes(data))


def _truncate_faiss(folder: Path) -> None:
    (path,) = folder.glob("vectors-*.faiss")
    path.write_bytes(path.read_bytes()[:1000])


def _junk_faiss(folder: Path) -> None:
    (path,) = folder.glob("vectors-*.faiss")
    path.write_bytes(b"\x00" * path.stat().st_size)  # the right size, nothing faiss can read


def _delete_faiss(folder: Path) -> None:
    (path,) = folder.glob("vectors-*.faiss")
    path.unlink()


@pytest.mark.parametrize("damage", [_damage_state, _flip_state, _truncate_faiss, _junk_faiss, _delete_faiss])
def test_a_damaged_persisted_index_is_rebuilt_with_one_warning(
    data_dir: Path, embedder: Embedder, damage, caplog: pytest.LogCaptureFixture
) -> None:
    before = _answers(_open(data_dir, embedder))
    damage(data_dir / persisted.FOLDER)
    with caplog.at_level("WARNING"):
        rebuilt = _open(data_dir, embedder)
        assert rebuilt.index.made == {"restored": 0, "read": 3, "persisted": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "damaged" in warnings[0], warnings
    assert _answers(rebuilt) == before
    assert sorted(p.name for p in (data_dir / VECTORS).iterdir()) == sorted(
        f"{r.key}.npy" for r in rebuilt.library.records()
    )  # nothing of the library was deleted
    again = _open(data_dir, embedder)  # and the index written in its place is sound
    assert again.index.made["restored"] == 3
    assert _answers(again) == before


def test_an_index_replaced_while_it_is_read_is_read_again_not_rebuilt(
    data_dir: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = _answers(_open(data_dir, embedder))
    real = persisted.read
    replaced: list[str] = []

    def read_then_replace(folder: Path, most: tuple[int, int] | None = None) -> persisted.Persisted | None:
        found = real(folder, most)
        if not replaced:  # another process writes the index anew just after this one read index.npz
            replaced.append("yes")
            other = _open(data_dir, embedder).index
            other._persisted = False
            other._persist()
            assert other.made["persisted"] == 1
        return found

    monkeypatch.setattr(persisted, "read", read_then_replace)
    with caplog.at_level("WARNING"):
        searcher = _open(data_dir, embedder)
        assert searcher.index.made == {"restored": 3, "read": 0, "persisted": 0}  # the new one, read at once
    assert replaced and not [r for r in caplog.records if r.levelname == "WARNING"]
    assert _answers(searcher) == before


def test_a_file_in_place_of_the_search_folder_is_one_warning_and_left_alone(
    data_dir: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    before = _answers(_open(data_dir, embedder))
    folder = data_dir / persisted.FOLDER
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("not a folder\n")
    with caplog.at_level("WARNING"):
        searcher = _open(data_dir, embedder)
        assert _answers(searcher) == before
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "is not a directory" in warnings[0] and str(folder) in warnings[0]
    assert searcher.index.made == {"restored": 0, "read": 3, "persisted": 0}
    assert folder.read_text() == "not a folder\n"


def test_articles_added_and_removed_by_another_library_are_noticed(
    data_dir: Path, embedder: Embedder, hashed: list[int]
) -> None:
    writer = Library(data_dir, IndexConfig(data_dir=data_dir))
    bakery = next(r for r in writer.records() if r.title == "Village bakery")
    writer.remove([bakery.id])
    orchard = writer.add(_article(ORCHARD, "/x/orchard.txt", "Apple orchard"), embedder).record
    hashed.clear()
    reader = _open(data_dir, embedder)
    index = reader.index
    # Only the new article is read from its file; the removed one is gone.
    assert index.made["restored"] == 2 and index.made["read"] == 1 and hashed == [orchard.key]
    assert bakery.key not in index.articles and orchard.key in index.articles
    bread = answer(reader, "When does the rye bread sell out?")
    assert all(p.article.title != "Village bakery" for p in bread.passages)
    cider = answer(reader, "When does the cider press run?")
    assert cider.found and cider.passages[0].text == ORCHARD[1]


def test_a_vector_file_replaced_after_persisting_is_read_and_checked_again(
    data_dir: Path, embedder: Embedder, hashed: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    bakery = next(r for r in library.records() if r.title == "Village bakery")
    path = data_dir / VECTORS / f"{bakery.key}.npy"
    path.write_bytes(b"\x93NUMPY" + bytes(path.stat().st_size - 6))  # same size, new content
    hashed.clear()
    with caplog.at_level("WARNING"):
        reader = _open(data_dir, embedder)
        result = answer(reader, "When does the rye bread sell out?")
    assert bakery.key in hashed  # its changed identity sent it to be hashed, which caught it
    assert any("damaged" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert result.found and result.passages[0].text == BAKERY[1]


def test_after_an_add_a_reader_reads_only_the_new_article(
    data_dir: Path, embedder: Embedder, hashed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = Library(data_dir, IndexConfig(data_dir=data_dir))
    orchard = writer.add(_article(ORCHARD, "/x/orchard.txt", "Apple orchard"), embedder).record
    state = data_dir / persisted.FOLDER / persisted.STATE
    written = state.stat().st_mtime_ns
    hashed.clear()
    for _ in range(2):  # 2 paragraphs of 26 are under the share: each reader restores the rest, writes nothing
        reader = _open(data_dir, embedder)
        assert reader.index.made == {"restored": 3, "read": 1, "persisted": 0}
        assert answer(reader, "When does the cider press run?").passages[0].text == ORCHARD[1]
    assert hashed == [orchard.key, orchard.key] and state.stat().st_mtime_ns == written
    monkeypatch.setattr(library_index, "PERSIST_SHARE", 0.05)  # past the share, a reader writes it again
    assert _open(data_dir, embedder).index.made == {"restored": 3, "read": 1, "persisted": 1}
    assert _open(data_dir, embedder).index.made == {"restored": 4, "read": 0, "persisted": 0}
    monkeypatch.setattr(library_index, "PERSIST_SHARE", 0.5)  # under the share, but past the most paragraphs
    monkeypatch.setattr(library_index, "PERSIST_MOST", 1)
    writer.add(_article(["A second orchard grows pears.", "It sells perry."], "/x/pears.txt", "Pears"), embedder)
    assert _open(data_dir, embedder).index.made == {"restored": 4, "read": 1, "persisted": 1}
    assert _open(data_dir, embedder).index.made == {"restored": 5, "read": 0, "persisted": 0}


READER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from index.analysis.embed import Embedder
    from index.answer import answer
    from index.config import IndexConfig
    from index.search.retrieve import Searcher
    from index.store.library import Library

    data_dir, rounds = Path(sys.argv[1]), int(sys.argv[2])
    embedder = Embedder(threads=1)
    restored = persisted = 0
    for _ in range(rounds):
        searcher = Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)
        result = answer(searcher, "When does the rye bread sell out?")
        assert result.found and result.passages[0].text.startswith("Its rye bread"), result
        restored += searcher.index.made["restored"]
        persisted += searcher.index.made["persisted"]
        searcher.library.close()
    print("ok", restored, persisted)
    """
)

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from index.analysis.embed import Embedder
    from index.config import IndexConfig
    from index.reading.article import article_from_paragraphs
    from index.store.library import Library

    data_dir, rounds = Path(sys.argv[1]), int(sys.argv[2])
    embedder = Embedder(threads=1)
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    for n in range(rounds):
        paragraphs = [f"Ferry number {n} leaves the pier at {n} o'clock.", f"Ticket {n} costs {n + 2} pounds."]
        record = library.add(article_from_paragraphs(paragraphs, title=f"Ferry {n}", source=f"/x/f{n}.txt"), embedder)
        if n % 3 == 2:
            library.remove([record.record.id])
    print("ok")
    """
)


@pytest.mark.slow
def test_readers_and_a_writer_at_once_never_fail(data_dir: Path, tmp_path: Path) -> None:
    def start(script: str, rounds: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", script, str(data_dir), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    processes = [start(WRITER, 12), start(READER, 25), start(READER, 25)]
    outs = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0 and out.startswith("ok"), err[-2000:]
        assert "damaged" not in err, err[-2000:]  # no reader ever saw half a file
        outs.append(out.split())
    # The readers opened the persisted index and wrote it again as the writer added articles.
    assert all(int(out[1]) > 0 for out in outs[1:]) and sum(int(out[2]) for out in outs[1:]) > 0, outs
    assert not list((data_dir / persisted.FOLDER).glob(".*.tmp"))
    assert len(list((data_dir / persisted.FOLDER).glob("vectors-*.faiss"))) == 1


def test_an_index_of_another_format_is_rebuilt_without_a_warning(
    data_dir: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    before = _answers(_open(data_dir, embedder))
    rewrite_stamp(data_dir / persisted.FOLDER, lambda stamp: stamp.update(format=persisted.FORMAT + 1))
    with caplog.at_level("INFO"):
        rebuilt = _open(data_dir, embedder)
        assert rebuilt.index.made == {"restored": 0, "read": 3, "persisted": 1}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # not damage: another citebot wrote it
    assert any("format" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert _answers(rebuilt) == before
    assert _open(data_dir, embedder).index.made["restored"] == 3


def test_an_index_larger_than_the_catalog_can_need_is_not_read(
    data_dir: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = _answers(_open(data_dir, embedder))
    folder = data_dir / persisted.FOLDER
    npz, faiss = ((folder / persisted.STATE).stat().st_size, next(folder.glob("vectors-*.faiss")).stat().st_size)
    records = Library(data_dir, IndexConfig(data_dir=data_dir)).records()
    totals = (sum(getattr(r, name) for r in records) for name in ("paragraphs", "sentences", "chars"))
    most = persisted.capacity(len(records), *totals, embedder.dimension)
    assert most[0] > 4 * npz and most[1] > 4 * faiss  # room for an index written before articles were removed
    read: list[int] = []
    real = persisted._member
    monkeypatch.setattr(persisted, "_member", lambda *args: read.append(1) or real(*args))
    monkeypatch.setattr(persisted, "SLACK_BYTES", 0)
    monkeypatch.setattr(persisted, "NPZ_BYTES", dict.fromkeys(persisted.NPZ_BYTES, 1))  # as if it held far more
    with caplog.at_level("WARNING"):
        rebuilt = _open(data_dir, embedder)
        assert rebuilt.index.made == {"restored": 0, "read": 3, "persisted": 1}
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "more than its library can need" in warning and read == [], warning  # refused before reading a member
    assert _answers(rebuilt) == before
