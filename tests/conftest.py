"""Shared fixtures: the real model, the bundled article, a way to run the real ``citebot`` command, and a fake
Telegram Bot API server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from index.analysis.embed import Embedder
from index.config import IndexConfig, default_article
from index.reading.article import Article
from index.reading.ingest import read_article
from index.search.library_index import ArticleData
from index.search.retrieve import Searcher
from index.store.library import Library
from tests.support.citebot import citebot_environment
from tests.support.fake_telegram import FakeTelegram
from tests.support.paths import CITEBOT, ROOT

SHARED = ROOT.parent / "shared"
#: Fixtures that start real processes: a test using one is marked ``slow`` (``pytest -m "not slow"`` skips it).
SLOW_FIXTURES = frozenset({"run_citebot"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that runs the real ``citebot`` command."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The default model, loaded once for the whole run."""
    return Embedder()


@pytest.fixture(scope="session")
def seed() -> Article:
    """The bundled article, cleaned."""
    return read_article(default_article())


@pytest.fixture(scope="session")
def seed_searcher(embedder: Embedder) -> Searcher:
    """A library in memory holding only the bundled article (as a new library does)."""
    searcher = Searcher(Library(None, IndexConfig()), embedder)
    searcher.index  # noqa: B018 - seed it now
    return searcher


@pytest.fixture(scope="session")
def seed_data(seed_searcher: Searcher) -> ArticleData:
    """The bundled article as the library holds it in memory."""
    (data,) = seed_searcher.index.articles.values()
    return data


@pytest.fixture
def config(tmp_path: Path) -> IndexConfig:
    """An index configuration whose data directory is private to the test."""
    return IndexConfig(data_dir=tmp_path / "data")


@pytest.fixture
def run_citebot(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``citebot`` command with a private data directory and no ``.env``."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120):
        return subprocess.run(
            [CITEBOT, *args],
            input=input,
            capture_output=True,
            text=True,
            env=citebot_environment(tmp_path, env),
            cwd=tmp_path,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTelegram]:
    """A fake Telegram Bot API server on 127.0.0.1, one per test module (its bot serves the whole module)."""
    with FakeTelegram() as fake:
        yield fake
