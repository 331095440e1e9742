"""The library: many articles added and removed incrementally, searched whole or in part, each quote naming its article.

In-process tests use the real model and faiss; the command-line tests run the installed ``citebot``; the
crash and concurrency tests kill and race real subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import bm25s
import numpy as np
import pytest

from index.analysis.embed import Embedder
from index.analysis.words import tokenize
from index.answer import ArticleRef, answer
from index.config import IndexConfig
from index.errors import Stopped
from index.reading.article import Article, article_from_paragraphs
from index.search.bm25 import Postings, bm25_idf
from index.search.retrieve import Searcher
from index.search.vector_index import VectorIndex
from index.store.catalog import Catalog
from index.store.library import CATALOG, VECTORS, Library
from index.store.vectors import load_vectors
from tests.support.paths import CITEBOT

BAKERY = ["The bakery on Mill Street opened in 1952.", "Its rye bread sells out by nine every morning."]
HARBOUR = [
    "The harbour of Port Ellis handles grain and timber.",
    "Fog closes the harbour mouth on about twenty mornings a year.",
]


def _article(paragraphs: list[str], source: str, title: str = "") -> Article:
    return article_from_paragraphs(paragraphs, title=title, source=source)


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.texts: list[str] = []

    def encode(self, texts: list[str], **kwargs) -> np.ndarray:
        self.texts.extend(texts)
        return self._embedder.encode(texts, **kwargs)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text], progress=False)[0]

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


def test_adding_embeds_only_the_new_article_and_removing_embeds_nothing(embedder: Embedder, config) -> None:
    counting = CountingEmbedder(embedder)
    library = Library(config.data_dir, config)
    searcher = Searcher(library, counting)  # type: ignore[arg-type]
    searcher.index  # noqa: B018 - seeds the bundled article
    counting.texts.clear()
    library.add(_article(BAKERY, "/x/bakery.txt", "Village bakery"), counting)  # type: ignore[arg-type]
    assert counting.texts == BAKERY  # its two sentences, once: no windows, nothing already stored
    counting.texts.clear()
    (bundled,) = [r for r in library.records() if r.source.startswith("bundled:")]
    library.remove([bundled.id])
    assert counting.texts == []
    result = answer(searcher, "When does the rye bread sell out?")  # asked right after: sees the change
    assert result.found and result.passages[0].article.title == "Village bakery"
    assert counting.texts == ["When does the rye bread sell out?"]


def test_same_content_is_a_no_op_and_a_changed_source_replaces_keeping_the_id(embedder: Embedder, config) -> None:
    library = Library(config.data_dir, IndexConfig(data_dir=config.data_dir, seed=False))
    first = library.add(_article(BAKERY, "/x/bakery.txt"), embedder)
    again = library.add(_article(BAKERY, "/x/bakery.txt"), embedder)
    assert (first.status, again.status) == ("added", "unchanged") and again.record.id == first.record.id
    changed = library.add(_article([BAKERY[0], "Its rye bread sells out by ten."], "/x/bakery.txt"), embedder)
    assert changed.status == "replaced" and changed.record.id == first.record.id
    assert changed.record.key != first.record.key
    assert not (config.data_dir / VECTORS / f"{first.record.key}.npy").exists()  # the old version's vectors are gone
    result = answer(Searcher(library, embedder), "When does the rye bread sell out?")
    assert "by ten" in result.passages[0].text


def test_an_untitled_article_has_the_same_name_when_added_and_when_listed(embedder: Embedder, config) -> None:
    library = Library(config.data_dir, IndexConfig(data_dir=config.data_dir, seed=False))
    sources = ["bundled:bakery.txt", "https://news.example/2025/bakery/", "/x/harbour.md"]
    names = []
    for source, paragraphs in zip(sources, [BAKERY, HARBOUR, [HARBOUR[1]]], strict=True):
        article = _article(paragraphs, source)
        record = library.add(article, embedder).record
        assert article.label == record.label == ArticleRef.of(record).label
        names.append(record.label)
    assert names == ["bakery.txt", "bakery", "harbour.md"]


def test_ids_are_never_reused(embedder: Embedder, config) -> None:
    library = Library(config.data_dir, IndexConfig(data_dir=config.data_dir, seed=False))
    a = library.add(_article(BAKERY, "/x/a.txt"), embedder).record
    library.remove([a.id])
    b = library.add(_article(HARBOUR, "/x/b.txt"), embedder).record
    assert b.id > a.id
    assert [r.id for r in Library(config.data_dir, config).records()] == [b.id]  # stable across a reopening


def test_scope_narrows_the_search_and_the_wording_follows_it(embedder: Embedder) -> None:
    library = Library(None, IndexConfig(seed=False))
    bakery = library.add(_article(BAKERY, "/x/bakery.txt", "Village bakery"), embedder).record
    harbour = library.add(_article(HARBOUR, "/x/harbour.txt", "Port Ellis"), embedder).record
    searcher = Searcher(library, embedder)
    whole = answer(searcher, "How often does fog close the harbour?")
    assert whole.found and whole.passages[0].article.id == harbour.id
    assert {p.article.id for p in whole.passages} == {bakery.id, harbour.id}
    narrowed = answer(searcher, "How often does fog close the harbour?", scope=[bakery.id])
    assert {p.article.id for p in narrowed.passages} == {bakery.id}
    assert not narrowed.found and narrowed.not_found == "The article does not answer that."
    nowhere = answer(searcher, "Who won the 1998 football world cup?")
    assert not nowhere.found and nowhere.not_found == "The library does not answer that."


def test_a_reader_sees_articles_another_process_adds_without_a_restart(
    embedder: Embedder, config, run_citebot, tmp_path: Path
) -> None:
    data_dir = tmp_path / "cli-data"  # where run_citebot's citebot keeps its library
    reader = Searcher(Library(data_dir, IndexConfig(data_dir=data_dir)), embedder)
    before = answer(reader, "When does the rye bread sell out?")
    assert not before.found
    (tmp_path / "bakery.txt").write_text("Village bakery\n\n" + "\n\n".join(BAKERY) + "\n")
    added = run_citebot("add", "bakery.txt")
    assert added.returncode == 0, added.stderr
    after = answer(reader, "When does the rye bread sell out?")
    assert after.found and after.passages[0].article.title == "Village bakery"


def test_a_damaged_vector_file_is_embedded_again_with_one_warning(embedder: Embedder, config, caplog) -> None:
    library = Library(config.data_dir, IndexConfig(data_dir=config.data_dir, seed=False))
    record = library.add(_article(BAKERY, "/x/bakery.txt"), embedder).record
    path = config.data_dir / VECTORS / f"{record.key}.npy"
    path.write_bytes(path.read_bytes()[:100])
    reopened = Library(config.data_dir, IndexConfig(data_dir=config.data_dir, seed=False))
    with caplog.at_level("WARNING"):
        result = answer(Searcher(reopened, embedder), "When does the rye bread sell out?")
    assert result.found and result.passages[0].text == BAKERY[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "damaged" in warnings[0]
    repaired = reopened.records()[0]
    load_vectors(path, repaired.vectors_sha256, repaired.sentences)  # sound again


def _textbook_bm25(query: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """BM25 (Lucene's IDF) written out term by term, as a reference."""
    n = len(docs)
    average = sum(max(len(d), 1) for d in docs) / n
    scores = []
    for doc in docs:
        score = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            tf = doc.count(term)
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf / (tf + k1 * (1 - b + b * max(len(doc), 1) / average))
        scores.append(score)
    return scores


def test_bm25_matches_the_textbook_and_ranks_as_bm25s_does(seed: Article) -> None:
    paragraphs = [seed.paragraph(i) for i in range(len(seed.paragraphs))]
    tokens = [tokenize(p) for p in paragraphs]
    vocabulary = {t: i for i, t in enumerate(sorted({t for doc in tokens for t in doc}))}
    postings = Postings()
    docs = np.concatenate([np.full(len(doc), n) for n, doc in enumerate(tokens)])
    postings.add(docs, np.array([vocabulary[t] for doc in tokens for t in doc]))
    lengths = np.array([max(len(d), 1) for d in tokens], dtype=np.float64)
    reference = bm25s.BM25()
    reference.index([doc or ["\0"] for doc in tokens], show_progress=False)
    for question in ("Which two roads meet at Saraqeb?", "Turkish forces shelling regime forces", "Russia Russia"):
        query = [t for t in tokenize(question) if t in vocabulary]
        ids = np.array([vocabulary[t] for t in query])
        df = np.array([sum(t in set(d) for d in tokens) for t in query])
        ours = postings.bm25(ids, bm25_idf(df, len(tokens)), lengths, float(lengths.mean()))
        np.testing.assert_allclose(ours, _textbook_bm25(query, tokens), rtol=1e-9)
        theirs = reference.get_scores(query)
        assert np.argmax(ours) == np.argmax(theirs)
        assert np.corrcoef(ours, theirs)[0, 1] > 0.98  # bm25s's own length averaging differs slightly


def test_vector_index_ids_are_stable_and_ivf_agrees_with_exact_search() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 32))
    vectors = {}
    for key in range(1, 41):
        raw = centres[rng.integers(0, 20, 100)] + 0.3 * rng.normal(size=(100, 32))
        vectors[key] = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    exact = VectorIndex.build(32, vectors)
    ivf = VectorIndex.build(32, vectors, exact_limit=1000, nprobe=64)
    assert (exact.kind, ivf.kind) == ("exact", "ivf")
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    recall = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        _, truth = exact.search(q, 20)
        _, found = ivf.search(q, 20)
        recall.append(len(set(truth) & set(found)) / 20)
    assert np.mean(recall) >= 0.95
    exact.remove(7)
    _, ids = exact.search(vectors[8][3], 1)
    assert ids[0] == (8 << 20) + 3  # removing another article renumbered nothing
    _, scoped = exact.search(vectors[8][3], 5, keys=[9, 10])
    assert set(scoped >> 20) <= {9, 10}


# --- the command line ---------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, paragraphs: list[str], title: str) -> Path:
    path = tmp_path / name
    path.write_text(title + "\n\n" + "\n\n".join(paragraphs) + "\n")
    return path


def test_add_list_ask_in_remove(run_citebot, tmp_path: Path) -> None:
    _write(tmp_path, "bakery.txt", BAKERY, "Village bakery")
    _write(tmp_path, "harbour.txt", HARBOUR, "Port Ellis harbour")
    added = run_citebot("add", "bakery.txt", "harbour.txt", "missing.txt")
    assert added.returncode == 2  # one of three failed; the others were added
    assert "missing.txt: no such file" in added.stderr and "Traceback" not in added.stderr
    assert "added [2] Village bakery (2 paragraphs" in added.stdout
    assert "added [3] Port Ellis harbour" in added.stdout
    again = run_citebot("add", "bakery.txt")
    assert again.returncode == 0 and "already in the library: [2] Village bakery" in again.stdout
    listed = json.loads(run_citebot("list", "--json").stdout)
    assert [(a["id"], a["title"], a["paragraphs"]) for a in listed] == [
        (1, "Turkey launches 'limited' operation to retake Idlib towns", 20),
        (2, "Village bakery", 2),
        (3, "Port Ellis harbour", 2),
    ]
    assert listed[0]["date"] == "20 February, 2020" and listed[1]["source"] == str(tmp_path / "bakery.txt")
    asked = run_citebot("ask", "How often does fog close the harbour mouth?", "--json", "--in", "3", "--in", "2")
    obj = json.loads(asked.stdout)
    assert obj["found"] and {p["article"]["id"] for p in obj["passages"]} == {2, 3}
    top = obj["passages"][0]
    assert top["article"] == {
        "id": 3,
        "title": "Port Ellis harbour",
        "source": str(tmp_path / "harbour.txt"),
        "date": None,
        "url": None,
    }
    assert set(top) >= {"text", "paragraph", "paragraphs", "score", "highlight", "article"}
    removed = run_citebot("remove", "1", "3")
    assert removed.returncode == 0 and "removed [3] Port Ellis harbour" in removed.stdout
    assert [a["id"] for a in json.loads(run_citebot("list", "--json").stdout)] == [2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remove", "9"], "no article with id 9 in the library (ids: 1)"),
        (["ask", "Who?", "--in", "9"], "no article with id 9 in the library (ids: 1)"),
        (["ask", "Who?", "--in", "1", "--article", "a.txt"], "cannot be used with --article"),
    ],
)
def test_library_mistakes_are_one_line(run_citebot, args: list[str], message: str) -> None:
    assert run_citebot("index").returncode == 0  # a library holding the bundled article
    result = run_citebot(*args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_bad_id_is_a_usage_error(run_citebot) -> None:
    result = run_citebot("remove", "x")
    assert result.returncode == 2 and "expected an article id (a number, see citebot list), got 'x'" in result.stderr
    assert "Traceback" not in result.stderr


def test_list_and_remove_do_not_load_the_model(run_citebot, tmp_path: Path) -> None:
    assert run_citebot("index").returncode == 0
    probe = (
        "import sys, runpy; sys.argv = ['citebot', 'list']; "
        "from bot.terminal.cli import main; code = main(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'faiss', 'sentence_transformers')); "
        "assert not heavy, heavy; "
        "sys.exit(code)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEBOT_")}
    env["CITEBOT_DATA_DIR"] = str(tmp_path / "cli-data")  # run_citebot's library
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Turkey launches" in result.stdout


def test_console_lists_articles_and_sets_the_scope(run_citebot, tmp_path: Path) -> None:
    _write(tmp_path, "bakery.txt", BAKERY, "Village bakery")
    assert run_citebot("add", "bakery.txt").returncode == 0
    session = "articles\nuse 2\nWho denied the claim?\nuse 7\nuse all\nWho denied the claim?\nquit\n"
    result = run_citebot("console", input=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[1] Turkey launches" in out and "[2] Village bakery" in out
    assert "Now asking “Village bakery”" in out
    assert "The article does not answer that." in out  # the bakery does not know
    assert "no article with id 7" in out
    assert "Ankara has denied the claim." in out  # the whole library again
    assert "[2] ? " in out  # the prompt shows the scope


# --- crashes and races -------------------------------------------------------------------------------


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env.update(CITEBOT_DATA_DIR=str(data_dir), NO_COLOR="1")
    return env


def _consistent(data_dir: Path) -> list[int]:
    """Check that the catalog and the vector files agree; return the article ids."""
    catalog = Catalog(data_dir / CATALOG)
    records = catalog.records()
    for record in records:
        load_vectors(data_dir / VECTORS / f"{record.key}.npy", record.vectors_sha256, record.sentences)
    catalog.close()
    return [r.id for r in records]


@pytest.mark.slow
def test_kill_9_at_any_moment_of_add_leaves_a_sound_library(embedder: Embedder, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert subprocess.run([CITEBOT, "index"], env=_env(data_dir), capture_output=True, timeout=300).returncode == 0
    paragraphs = [f"Ship {i} carried {i * 3} tonnes of grain to the northern quay on day {i}." for i in range(300)]
    (tmp_path / "ships.txt").write_text("Shipping log\n\n" + "\n\n".join(paragraphs) + "\n")
    vectors = data_dir / VECTORS
    # Kill while the model loads, while it embeds, and the moment the new vector file appears (before or
    # just after the catalog row that names it is committed).
    for when in (1.0, 4.0, "vector file", "vector file"):
        before = set(vectors.iterdir())
        process = subprocess.Popen(
            [CITEBOT, "add", "ships.txt"], env=_env(data_dir), cwd=tmp_path, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        if isinstance(when, float):
            time.sleep(when)
        else:
            while set(vectors.iterdir()) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        ids = _consistent(data_dir)
        assert ids[0] == 1 and len(ids) <= 2
        if len(ids) == 2:  # it got as far as committing: take it out and try again
            gone = subprocess.run([CITEBOT, "remove", str(ids[1])], env=_env(data_dir), capture_output=True)
            assert gone.returncode == 0
    _write(tmp_path, "bakery.txt", BAKERY, "Village bakery")  # the next writer cleans up after the crashes
    assert subprocess.run([CITEBOT, "add", "bakery.txt"], env=_env(data_dir), cwd=tmp_path).returncode == 0
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    keys = {r.key for r in library.records()}
    assert sorted(int(p.name.split(".")[0]) for p in vectors.iterdir()) == sorted(keys)  # no orphan, no temp file
    searcher = Searcher(library, embedder)
    assert "M4 and M5" in answer(searcher, "Which roads meet at Saraqeb?").passages[0].text
    assert answer(searcher, "When does the rye bread sell out?").passages[0].text == BAKERY[1]


@pytest.mark.slow
def test_two_processes_adding_at_once_serialise(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert subprocess.run([CITEBOT, "index"], env=_env(data_dir), capture_output=True, timeout=300).returncode == 0
    _write(tmp_path, "bakery.txt", BAKERY, "Village bakery")
    _write(tmp_path, "harbour.txt", HARBOUR, "Port Ellis harbour")
    runs = [
        subprocess.Popen([CITEBOT, "add", name], env=_env(data_dir), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        for name in ("bakery.txt", "harbour.txt")
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert sorted(_consistent(data_dir)) == [1, 2, 3]


def test_an_add_told_to_stop_stores_nothing_whether_embedding_or_about_to_commit(embedder: Embedder, config) -> None:
    """A shutting-down front end stops an addition at a safe point: between embedding batches, or after the
    embedding, just before anything is written; the earlier version of a replaced article stays as it was."""
    library = Library(config.data_dir, config)
    first = library.add(_article(BAKERY, "/x/bakery.txt"), embedder).record
    before = library.records()
    checks: list[int] = []

    def at_once() -> bool:
        checks.append(1)
        return True

    long = _article([f"Paragraph {n} says the harbour handled {n} ships." for n in range(300)], "/x/long.txt")
    with pytest.raises(Stopped):
        library.add(long, embedder, should_stop=at_once)
    assert checks == [1]  # at the first check, before anything was split or embedded
    prepared = threading.Event()  # set once the embedding is done, before the writers' lock is taken
    changed = _article([BAKERY[0], "Its rye bread sells out by ten."], "/x/bakery.txt")
    with pytest.raises(Stopped, match=r"^/x/bakery.txt: stopped before it was stored$"):
        library.add(changed, embedder, on_prepared=prepared.set, should_stop=prepared.is_set)
    assert library.records() == before and first in before
    assert {p.name for p in (config.data_dir / VECTORS).iterdir()} == {f"{r.key}.npy" for r in before}
    assert library.add(changed, embedder).status == "replaced"  # nothing left behind stands in the way


def _catalog_counts(library: Library, lib) -> tuple[np.ndarray, np.ndarray, tuple[int, int, float, float]]:
    """The catalog's term counts of every term the library holds (by the in-memory index's vocabulary)."""
    ids = np.array(sorted(lib.vocabulary.values()), dtype=np.int64)
    return ids, *library.catalog.term_counts(ids)  # type: ignore[return-value]


def test_the_catalog_counts_terms_as_the_index_in_memory_does_through_adds_replaces_removes_and_a_recount(
    embedder: Embedder, config
) -> None:
    library = Library(config.data_dir, config)
    searcher = Searcher(library, embedder)
    library.add(_article(BAKERY, "/x/bakery.txt"), embedder)
    library.add(_article(HARBOUR, "/x/harbour.txt"), embedder)
    library.add(_article([BAKERY[0], "Its rye bread sells out by ten, and rye flour too."], "/x/bakery.txt"), embedder)
    (harbour,) = [r for r in library.records() if r.source == "/x/harbour.txt"]
    library.remove([harbour.id])

    def agree() -> None:
        lib = searcher.index
        ids, p_df, s_df, totals = _catalog_counts(library, lib)
        memory = lib.stats(ids, None)
        assert np.array_equal(p_df, memory.paragraph_df) and np.array_equal(s_df, memory.sentence_df)
        assert (totals[0], totals[1]) == (memory.paragraphs, memory.sentences)
        assert totals[2] / totals[0] == pytest.approx(memory.paragraph_length)
        assert totals[3] / totals[1] == pytest.approx(memory.sentence_length)
        fog = library.catalog.term_ids(tokenize("fog"))  # a term only the removed article held
        assert p_df.sum() > 0 and len(fog) == 1 and library.catalog.term_counts(np.array(list(fog.values())))[0] == 0

    agree()
    # A catalog written before the counts were kept is counted when next opened for writing, to the same figures.
    with library.catalog.transaction() as db:
        db.execute("DELETE FROM term_counts")
        db.execute("DELETE FROM meta WHERE name = 'counts'")
    library.close()
    with pytest.raises(Exception, match="does not keep term counts yet"):
        Library(config.data_dir, config, readonly=True).catalog.term_counts(np.array([1]))
    library = Library(config.data_dir, config)
    searcher = Searcher(library, embedder)
    agree()
