"""The background of an article: how close unrelated questions come to it, kept with the index."""

from __future__ import annotations

import numpy as np
import pytest

from index import store
from index.background import MIN_STD, Background, background_questions, background_vectors, measure
from index.build import open_index
from index.config import IndexConfig
from index.embed import Embedder
from index.ingest import Article


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


def test_seed_background_is_low_and_its_questions_stand_far_above_it(seed_retriever, embedder: Embedder) -> None:
    b = seed_retriever.index.background
    assert 0.0 < b.mean < 0.3 and 0.0 < b.std < 0.2
    vectors = background_vectors(embedder)
    assert vectors.shape == (len(background_questions()), embedder.dimension)
    ranking = seed_retriever.rank("How many people have fled their homes toward the Turkish border?")
    assert b.z(ranking.best_sentence_cosine) > 3


def test_background_is_stored_and_reloaded(seed: Article, embedder: Embedder, config: IndexConfig) -> None:
    built, _ = open_index(seed, embedder, config)
    loaded, r2 = open_index(seed, embedder, config)
    assert not r2.built
    assert loaded.background == built.background != Background()


def test_changed_background_questions_rebuild_the_index(
    seed: Article, embedder: Embedder, config: IndexConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, r1 = open_index(seed, embedder, config)
    monkeypatch.setattr(store, "questions_fingerprint", lambda: "something-else")
    _, r2 = open_index(seed, embedder, config)
    assert r2.built and r2.directory != r1.directory
