"""The stored index: reuse, invalidation, recovery from damage, atomic writes."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import store
from index.build import open_index
from index.config import IndexConfig
from index.embed import Embedder
from index.ingest import Article, article_from_paragraphs


def _dirs(config: IndexConfig) -> list[Path]:
    return sorted(p for p in Path(config.data_dir).iterdir() if p.is_dir())


def test_second_open_reuses_the_stored_index(seed: Article, embedder: Embedder, config: IndexConfig) -> None:
    first, report1 = open_index(seed, embedder, config)
    second, report2 = open_index(seed, embedder, config)
    assert (report1.built, report1.reason) == (True, "new")
    assert (report2.built, report2.reason) == (False, "reused")
    assert second.article == first.article
    assert second.chunks == first.chunks and second.sentences == first.sentences
    a = first.chunk_vectors.reconstruct_n(0, first.chunk_vectors.ntotal)
    b = second.chunk_vectors.reconstruct_n(0, second.chunk_vectors.ntotal)
    np.testing.assert_array_equal(a, b)
    manifest = json.loads((report2.directory / store.MANIFEST).read_text())
    assert manifest["article"] == seed.fingerprint and manifest["window"] == config.window
    assert manifest["model"] == embedder.fingerprint and manifest["format"] == store.FORMAT_VERSION


def test_changed_article_is_rebuilt_and_the_old_index_pruned(embedder: Embedder, config: IndexConfig) -> None:
    v1 = article_from_paragraphs(["The bridge opened in May.", "It cost ten million."], source="/x/news.txt")
    v2 = article_from_paragraphs(["The bridge opened in June.", "It cost ten million."], source="/x/news.txt")
    _, _r1 = open_index(v1, embedder, config)
    _, r2 = open_index(v2, embedder, config)
    assert r2.built and r2.reason == "changed"
    assert _dirs(config) == [r2.directory]
    index, r3 = open_index(v2, embedder, config)
    assert not r3.built and "June" in index.article.text


def test_changed_chunking_is_rebuilt(seed: Article, embedder: Embedder, config: IndexConfig) -> None:
    _, r1 = open_index(seed, embedder, config)
    other = IndexConfig(data_dir=config.data_dir, window=1)
    index, r2 = open_index(seed, embedder, other)
    assert r2.built and r2.directory != r1.directory
    assert len(index.chunks) == len(index.sentences)


def test_changed_model_is_rebuilt(tmp_path: Path, embedder: Embedder, config: IndexConfig) -> None:
    article = article_from_paragraphs(["Rain fell all week.", "The river rose."], source="/x/rain.txt")
    _, r1 = open_index(article, embedder, config)
    copy = tmp_path / "my-model"
    shutil.copytree(embedder.location, copy)  # the same weights under another name: another model to citebot
    other = Embedder(str(copy))
    _, r2 = open_index(article, other, config)
    assert r2.built and r2.directory != r1.directory
    manifest = json.loads((r2.directory / store.MANIFEST).read_text())
    assert manifest["model_name"] == str(copy)


@pytest.mark.parametrize("victim", [store.CHUNK_VECTORS, store.SENTENCE_VECTORS, store.ARTICLE, store.MANIFEST])
def test_truncated_file_is_detected_and_rebuilt_with_a_warning(
    seed: Article, embedder: Embedder, config: IndexConfig, victim: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, r1 = open_index(seed, embedder, config)
    path = r1.directory / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        index, r2 = open_index(seed, embedder, config)
    assert r2.built and r2.reason.startswith("damaged")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "\n" not in warnings[0]
    assert index.chunk_vectors.ntotal == len(index.chunks)
    _, r3 = open_index(seed, embedder, config)
    assert not r3.built  # the rebuilt index is sound


def test_missing_file_is_detected(seed: Article, embedder: Embedder, config: IndexConfig) -> None:
    _, r1 = open_index(seed, embedder, config)
    (r1.directory / store.CHUNK_VECTORS).unlink()
    _, r2 = open_index(seed, embedder, config)
    assert r2.reason == "damaged: chunks.faiss missing"


def test_crash_mid_write_leaves_the_old_index_whole(
    seed: Article, embedder: Embedder, config: IndexConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, r1 = open_index(seed, embedder, config)
    before = {p.name: p.read_bytes() for p in r1.directory.iterdir()}
    calls = []

    def crash(vectors: faiss.Index, path: str) -> None:
        calls.append(path)
        if len(calls) == 2:  # the first faiss file is written, the second never is
            raise OSError("disk full")
        faiss.write_index(vectors, path)

    monkeypatch.setattr(store.faiss, "write_index", crash)
    with pytest.raises(OSError, match="disk full"):
        store.save_index(index, r1.directory)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in r1.directory.iterdir()} == before
    assert _dirs(config) == [r1.directory]  # no temporary directory left behind
    _, r2 = open_index(seed, embedder, config)
    assert not r2.built
