"""The first stage on Qdrant (``CITEBOT_SEARCH=qdrant``) against the real engine, Qdrant Edge, in-process.

One library on disk (four SQuAD articles of half A) is searched by the local engine and by Qdrant: the candidates
and the answers agree, a scope is kept, a removal is seen, and what a crash between the catalog and the engine left
is repaired by the next process that opens the library.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bot.settings import Settings
from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.errors import CitebotError
from index.evaluate import load_squad, squad_to_article
from index.search.engine import EngineError
from index.search.engine.client import ClientTransport
from index.search.engine.edge import EdgeTransport
from index.search.engine.qdrant import QdrantEngine, version_of
from index.search.library_index import LibraryIndex
from index.search.retrieve import Searcher
from index.store.library import Library
from index.store.vectors import split_id
from tests.conftest import SHARED

SQUAD = SHARED / "data" / "squad-v1.1-dev-A.json"


@pytest.fixture(scope="module")
def squad() -> list:
    """Four articles of half A (about 200 paragraphs: more than one scope is scored whole, so the first stage runs)."""
    return load_squad(SQUAD)[:4]


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory, squad: list, embedder: Embedder) -> Path:
    """A data directory holding the four articles (made once; tests copy what they change)."""
    data_dir = tmp_path_factory.mktemp("engine") / "data"
    library = Library(data_dir, IndexConfig(data_dir=data_dir, seed=False))
    for article in squad:
        library.add(squad_to_article(article), embedder)
    library.close()
    return data_dir


def _searcher(data_dir: Path, embedder: Embedder, search: str, qdrant: Path | None = None) -> Searcher:
    config = IndexConfig(data_dir=data_dir, seed=False, search=search, qdrant_path=qdrant)
    return Searcher(Library(data_dir, config), embedder)


def _edge(path: Path, dimension: int, **options: object) -> QdrantEngine:
    return QdrantEngine(EdgeTransport(path, dimension, **options))  # type: ignore[arg-type]


def _questions(squad: list, each: int = 15) -> list[str]:
    return [q.question for article in squad for q in article.questions[:each]]


def test_qdrant_names_the_candidates_the_local_engine_names_and_the_answers_agree(
    library_dir: Path, squad: list, embedder: Embedder, tmp_path: Path
) -> None:
    local = _searcher(library_dir, embedder, "local")
    qdrant = _searcher(library_dir, embedder, "qdrant", tmp_path / "edge")
    try:
        assert qdrant.index.paragraphs > 120  # the first stage runs (a smaller scope is scored whole)
        assert isinstance(qdrant.index.engine, QdrantEngine) and local.index.engine.name == "local"
        questions = _questions(squad)
        same = sum(
            {(d.key, p) for d, p in local.candidates(q).pairs} == {(d.key, p) for d, p in qdrant.candidates(q).pairs}
            for q in questions
        )
        assert same >= 0.95 * len(questions)
        first = [(r.paragraphs[0].article.key, r.paragraphs[0].paragraph) for r in map(local.rank, questions)]
        again = [(r.paragraphs[0].article.key, r.paragraphs[0].paragraph) for r in map(qdrant.rank, questions)]
        assert sum(a == b for a, b in zip(first, again, strict=True)) >= 0.95 * len(questions)
    finally:
        qdrant.index.close()


def test_a_scope_is_kept_by_both_of_qdrants_lists(
    library_dir: Path, squad: list, embedder: Embedder, tmp_path: Path
) -> None:
    searcher = _searcher(library_dir, embedder, "qdrant", tmp_path / "edge")
    try:
        lib = searcher.index
        keys = sorted(lib.articles)[:2]
        question = squad[3].questions[0].question  # of an article outside the scope
        ids = lib.engine.dense(searcher.encode(question), 200, keys)
        assert len(ids) and set(split_id(ids)[0].tolist()) <= set(keys)
        unscoped = set(split_id(lib.engine.dense(searcher.encode(question), 200, None))[0].tolist())
        assert unscoped - set(keys)  # without the scope, the other articles are there
        ids_of = [lib.articles[k].record.id for k in keys]
        pairs = searcher.candidates("Which team won the game and who was the coach?", ids_of).pairs
        assert pairs and {d.key for d, _ in pairs} <= set(keys)
    finally:
        searcher.index.close()


def test_a_removal_is_seen_and_a_crash_between_catalog_and_engine_is_repaired(
    library_dir: Path, squad: list, embedder: Embedder, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    import shutil

    shutil.copytree(library_dir, data_dir)
    edge = tmp_path / "edge"
    searcher = _searcher(data_dir, embedder, "qdrant", edge)
    lib = searcher.index
    engine = lib.engine
    assert isinstance(engine, QdrantEngine)
    assert set(engine.versions()) == {version_of(d) for d in lib.articles.values()}
    gone = next(d for d in lib.articles.values() if d.record.title == squad_to_article(squad[0]).title)
    question = squad[0].questions[0].question
    assert gone.key in {d.key for d, _ in searcher.candidates(question).pairs}

    searcher.library.remove([gone.record.id])
    lib = searcher.index  # refreshed: the engine lost the article too
    assert version_of(gone) not in engine.versions()
    assert gone.key not in set(split_id(engine.dense(searcher.encode(question), 200, None))[0].tolist())
    assert all(d.key != gone.key for d, _ in searcher.candidates(question).pairs)

    # A crash after the catalog's commit and before the engine was written: one article's points are missing.
    kept = next(iter(lib.articles.values()))
    engine.transport.delete("version", [version_of(kept)])
    lib.close()
    fresh = _edge(edge, embedder.dimension)
    assert version_of(kept) not in fresh.versions()
    fresh.close()

    again = _searcher(data_dir, embedder, "qdrant", edge)
    try:
        engine = again.index.engine
        assert isinstance(engine, QdrantEngine)
        assert set(engine.versions()) == {version_of(d) for d in again.index.articles.values()}
        ids = engine.dense(again.encode(kept.sentence_text(0)), 5, None)
        assert kept.key in split_id(ids)[0].tolist()
    finally:
        again.index.close()


def test_an_edge_shard_open_elsewhere_is_one_line_naming_the_way_out(tmp_path: Path) -> None:
    first = _edge(tmp_path / "edge", 8)
    try:
        with pytest.raises(EngineError) as caught:
            _edge(tmp_path / "edge", 8)
        message = str(caught.value)
        assert "open in another citebot process" in message and "CITEBOT_QDRANT_URL" in message
        assert "\n" not in message
    finally:
        first.close()
    _edge(tmp_path / "edge", 8).close()  # closed, it opens again


def test_a_shard_is_one_librarys_and_a_library_in_memory_stays_local(
    library_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    edge = tmp_path / "edge"
    searcher = _searcher(library_dir, embedder, "qdrant", edge)
    held = set(searcher.index.engine.versions())  # type: ignore[attr-defined]
    searcher.index.close()
    other = tmp_path / "other"
    with pytest.raises(EngineError, match=r"holds the library in .*give each library its own CITEBOT_QDRANT_PATH"):
        _searcher(other, embedder, "qdrant", edge).index  # noqa: B018
    in_memory = Searcher(Library(None, IndexConfig(seed=True, search="qdrant", qdrant_path=edge)), embedder)
    assert in_memory.index.engine.name == "local"
    kept = _edge(edge, embedder.dimension, library=library_dir)
    try:
        assert set(kept.versions()) == held  # nobody else's sync deleted a thing
    finally:
        kept.close()


def test_qdrant_returns_nothing_for_an_empty_scope_or_no_known_words(tmp_path: Path) -> None:
    from index.search.engine import LexicalQuery

    engine = _edge(tmp_path / "edge", 8)
    try:
        assert engine.dense(np.ones(8, dtype=np.float32), 10, []).size == 0
        query = LexicalQuery((), np.zeros(0, dtype=np.int64), np.zeros(0), 1.0)
        assert engine.lexical(query, 10, None) == []
    finally:
        engine.close()


def test_the_search_setting_is_checked_and_lists_the_engines(tmp_path: Path) -> None:
    with pytest.raises(CitebotError, match=r"CITEBOT_SEARCH='elastic'.*local, qdrant"):
        Settings.from_env({"CITEBOT_SEARCH": "elastic"}, env_file=None)
    chosen = Settings.from_env({"CITEBOT_SEARCH": "Qdrant", "CITEBOT_QDRANT_PATH": str(tmp_path)}, env_file=None)
    assert chosen.index.search == "qdrant" and chosen.index.qdrant_directory() == tmp_path
    server = Settings.from_env(
        {"CITEBOT_QDRANT_URL": "https://q.example:6333", "CITEBOT_QDRANT_API_KEY": "sekrit"},
        env_file=None,
    ).index
    assert server.qdrant_url == "https://q.example:6333" and server.qdrant_api_key == "sekrit"
    assert "sekrit" not in repr(server) and server.qdrant_collection == "citebot"
    with pytest.raises(CitebotError, match=r"CITEBOT_QDRANT_URL=.*http:// or https://"):
        Settings.from_env({"CITEBOT_QDRANT_URL": "ftp://q.example"}, env_file=None)
    with pytest.raises(CitebotError, match=r"CITEBOT_QDRANT_COLLECTION=.*letters, digits"):
        Settings.from_env({"CITEBOT_QDRANT_COLLECTION": "../x"}, env_file=None)
    default = Settings.from_env({"CITEBOT_DATA_DIR": str(tmp_path)}, env_file=None).index
    assert default.search == "local" and default.qdrant_directory() == tmp_path / "qdrant-edge"


# --- the client transport: qdrant-client's local mode (the request shapes), and real HTTP on 127.0.0.1 ----------


def test_the_client_transport_in_local_mode_names_the_candidates_the_local_engine_names(
    library_dir: Path, squad: list, embedder: Embedder, tmp_path: Path
) -> None:
    local = _searcher(library_dir, embedder, "local")
    client = _searcher(library_dir, embedder, "qdrant")
    engine = QdrantEngine(ClientTransport("citebot", embedder.dimension, path=tmp_path / "client"))
    client._index = LibraryIndex(client.library, embedder, engine=engine)
    try:
        assert set(engine.versions()) == set() and client.index.engine is engine
        assert set(engine.versions()) == {version_of(d) for d in client.index.articles.values()}
        questions = _questions(squad, each=10)
        same = sum(
            {(d.key, p) for d, p in local.candidates(q).pairs} == {(d.key, p) for d, p in client.candidates(q).pairs}
            for q in questions
        )
        assert same >= 0.9 * len(questions)
        keys = sorted(client.index.articles)[:1]
        ids = engine.dense(client.encode(questions[-1]), 50, keys)
        assert len(ids) and set(split_id(ids)[0].tolist()) == set(keys)
    finally:
        engine.close()


class _Refusing(BaseHTTPRequestHandler):
    """A server that refuses every request as a Qdrant with another API key does."""

    def do_GET(self) -> None:
        body = b'{"status": {"error": "Must provide an API key or an Authorization bearer token"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_a_server_down_or_refusing_the_key_is_one_line_without_the_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once it is closed
    with pytest.raises(EngineError) as down:
        ClientTransport("citebot", 8, url=f"http://user:pw@127.0.0.1:{closed}", api_key="sekrit-key", timeout=2)
    assert "is not reachable" in str(down.value) and "\n" not in str(down.value)
    assert "sekrit" not in str(down.value) and "pw@" not in str(down.value)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(EngineError) as refused:
            ClientTransport("citebot", 8, url=f"http://127.0.0.1:{server.server_port}", api_key="sekrit-key")
        assert "refused the API key (HTTP 401)" in str(refused.value) and "CITEBOT_QDRANT_API_KEY" in str(refused.value)
        assert "sekrit" not in str(refused.value)
    finally:
        server.shutdown()
        server.server_close()


def test_on_qdrant_a_process_holds_no_more_of_the_library_than_its_questions_read(
    library_dir: Path, squad: list, embedder: Embedder, tmp_path: Path
) -> None:
    local = _searcher(library_dir, embedder, "local")
    config = IndexConfig(data_dir=library_dir, seed=False, search="qdrant", qdrant_path=tmp_path / "edge")
    library = Library(library_dir, config)
    lean = Searcher(library, embedder)
    lib = lean.index
    try:
        assert lib.lean and not local.index.lean
        assert lib.vectors.total == 0 and not lib.vocabulary and not len(lib.paragraph_key)  # no faiss, no postings
        assert lib.articles.held == 0 and len(lib.articles) == 4  # every record, no article read yet
        # The library's statistics come from the catalog, and equal the ones held in memory.
        ids = np.array(sorted(local.index.vocabulary.values()))
        mine, theirs = lib.stats(ids, None), local.index.stats(ids, None)
        assert np.array_equal(mine.paragraph_df, theirs.paragraph_df)
        assert np.array_equal(mine.sentence_df, theirs.sentence_df)
        # The articles read stay within the cache's bound (here one article), least recently used out first, and
        # the questions are answered as from the library in memory.
        lib.articles._most = 1  # type: ignore[attr-defined]
        spread, same, first_same = 0, 0, 0
        questions = _questions(squad, 3)
        for question in questions:
            pairs = lean.candidates(question).pairs
            spread = max(spread, len({d.key for d, _ in pairs}))
            assert lib.articles.held == 1
            same += {(d.key, p) for d, p in pairs} == {(d.key, p) for d, p in local.candidates(question).pairs}
            first, again = lean.rank(question).paragraphs[0], local.rank(question).paragraphs[0]
            first_same += (first.article.key, first.paragraph, first.sentences) == (
                again.article.key,
                again.paragraph,
                again.sentences,
            )
        # As in the first test: Qdrant's BM25 breaks a tie or two otherwise than the local engine.
        assert same >= 0.8 * len(questions) and first_same >= 0.9 * len(questions)
        assert spread > 1  # some question's candidates came from several articles, read one after the other
    finally:
        lib.close()
