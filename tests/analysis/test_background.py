"""The background of an article: how close unrelated questions come to it, kept with the index."""

from __future__ import annotations

import numpy as np
import pytest

from index.analysis.background import MIN_STD, Background, background_questions, background_vectors, measure
from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.reading.article import Article
from index.search.retrieve import Searcher
from index.store import library as library_module
from index.store.library import Library


def test_measure_is_the_spread_of_each_questions_best_cosine() -> None:
    article = np.eye(3, dtype=np.float32)  # three orthogonal unit vectors
    questions = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, -1]], dtype=np.float32)
    b = measure(article, questions)
    best = np.array([1.0, 0.8, 0.0])
    assert b.mean == pytest.approx(best.mean()) and b.std == pytest.approx(best.std())
    assert b.z(b.mean + 2 * b.std) == pytest.approx(2.0)
    assert Background(0.1, 0.0).z(0.1 + MIN_STD) == pytest.approx(1.0)  # a floor under the spread


def test_questions_are_everyday_and_many() -> None:
    questions = background_questions()
    assert len(questions) >= 100 and len(set(questions)) == len(questions)
    assert all(q.endswith("?") and not q.startswith("#") for q in questions)


def test_seed_background_is_low_and_its_questions_stand_far_above_it(seed_searcher, seed_data, embedder) -> None:
    b = seed_data.background
    assert 0.0 < b.mean < 0.3 and 0.0 < b.std < 0.2
    vectors = background_vectors(embedder)
    assert vectors.shape == (len(background_questions()), embedder.dimension)
    ranking = seed_searcher.rank("How many people have fled their homes toward the Turkish border?")
    assert ranking.features is not None and b.z(ranking.features.best_cosine) > 3


def test_background_is_stored_and_reloaded(seed: Article, embedder: Embedder, config: IndexConfig) -> None:
    first = Library(config.data_dir, config)
    built = first.add(seed, embedder).record
    again = Library(config.data_dir, config)
    (loaded,) = [r for r in again.records() if r.fingerprint == seed.fingerprint]
    assert (loaded.background_mean, loaded.background_std) == (built.background_mean, built.background_std)
    assert Background(loaded.background_mean, loaded.background_std) != Background()


def test_changed_background_questions_are_measured_again_without_embedding_the_articles(
    seed: Article, embedder: Embedder, config: IndexConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = Library(config.data_dir, config)
    library.add(seed, embedder)
    monkeypatch.setattr(library_module, "questions_fingerprint", lambda: "something-else")
    with library.catalog.transaction():
        library.catalog.set_meta("background_questions", "old")
    for record in library.records():
        with library.catalog.transaction() as db:
            db.execute("UPDATE articles SET background_mean = 0.9 WHERE id = ?", (record.id,))
    calls = []
    original = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw))
    reopened = Library(config.data_dir, config)  # the next citebot process, with the new questions
    Searcher(reopened, embedder).index  # noqa: B018
    assert all(r.background_mean < 0.5 for r in reopened.records())  # measured again
    assert calls == []  # from the stored vectors: no article text was embedded
