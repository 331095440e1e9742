"""Store: an article's index on disk (faiss vectors, chunk metadata, a manifest).

An index lives in its own directory under the data directory, named after
what it was built from. Writes are atomic: everything is written into a
hidden directory beside it, then renamed into place, so a crash leaves either
the old index or the new one, never half of one. On load every file is checked
against the hashes in the manifest, so a truncated or altered file is caught
(:class:`~index.errors.IndexCorruptError`) before faiss reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.background import Background, questions_fingerprint
from index.chunk import Chunk, Sentence
from index.errors import IndexCorruptError
from index.ingest import Article

#: Bumped when the layout of a stored index changes.
FORMAT_VERSION = 2

MANIFEST = "manifest.json"
ARTICLE = "article.json"
CHUNK_VECTORS = "chunks.faiss"
SENTENCE_VECTORS = "sentences.faiss"

#: A temporary directory older than this is left over from a crash and is removed.
STALE_TEMP_SECONDS = 3600


@dataclass
class ArticleIndex:
    """Everything needed to search one article: its text, units and their vectors.

    Attributes:
        article: the cleaned article.
        sentences: its sentences, in order.
        chunks: its sentence windows, in order.
        chunk_vectors: a faiss inner-product index, one unit vector per chunk.
        sentence_vectors: a faiss inner-product index, one unit vector per sentence.
        manifest: what the index was built from and how (see :func:`index_key`).
        background: how close unrelated questions come to this article (see :mod:`index.background`).
    """

    article: Article
    sentences: list[Sentence]
    chunks: list[Chunk]
    chunk_vectors: faiss.Index
    sentence_vectors: faiss.Index
    manifest: dict[str, Any] = field(default_factory=dict)
    background: Background = field(default_factory=Background)


def index_key(article: Article, model_fingerprint: str, window: int) -> dict[str, Any]:
    """Return the facts that decide whether a stored index can be reused."""
    return {
        "format": FORMAT_VERSION,
        "article": article.fingerprint,
        "model": model_fingerprint,
        "window": window,
        "background_questions": questions_fingerprint(),
    }


def index_dir(data_dir: Path, article: Article, key: dict[str, Any]) -> Path:
    """Return the directory that holds the index described by ``key``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = Path(article.source).stem if article.source else "article"
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "article"
    return data_dir / f"{slug}-{digest}"


def flat_index(vectors: np.ndarray) -> faiss.Index:
    """Return an exact inner-product faiss index holding ``vectors`` (unit length, so scores are cosines)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _article_payload(index: ArticleIndex) -> dict[str, Any]:
    a = index.article
    return {
        "title": a.title,
        "date": a.date,
        "source": a.source,
        "fingerprint": a.fingerprint,
        "text": a.text,
        "paragraphs": [list(span) for span in a.paragraphs],
        "sentences": [[s.paragraph, s.start, s.end] for s in index.sentences],
        "chunks": [[c.paragraph, c.first, c.last, c.start, c.end] for c in index.chunks],
    }


def save_index(index: ArticleIndex, directory: Path) -> None:
    """Write ``index`` to ``directory`` atomically, replacing what was there.

    The files are written into a temporary directory next to ``directory`` and
    the manifest, which lists their hashes, is written last; then the
    temporary directory is renamed into place.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        (tmp / ARTICLE).write_text(json.dumps(_article_payload(index), ensure_ascii=False), encoding="utf-8")
        faiss.write_index(index.chunk_vectors, str(tmp / CHUNK_VECTORS))
        faiss.write_index(index.sentence_vectors, str(tmp / SENTENCE_VECTORS))
        files = {name: _sha256(tmp / name) for name in (ARTICLE, CHUNK_VECTORS, SENTENCE_VECTORS)}
        background = {"mean": index.background.mean, "std": index.background.std}
        manifest = {**index.manifest, "background": background, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        for name in (*files, MANIFEST):
            with (tmp / name).open("rb") as handle:
                os.fsync(handle.fileno())
        index.manifest = manifest
        if directory.exists():
            trash = directory.parent / f".{directory.name}.{os.getpid()}.old"
            os.replace(directory, trash)
            os.replace(tmp, directory)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """Return the manifest stored in ``directory``, or ``None`` when there is no index there.

    Raises:
        IndexCorruptError: when the manifest exists but cannot be parsed.
    """
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"manifest unreadable ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError("manifest is not a JSON object")
    return manifest


def load_index(directory: Path, key: dict[str, Any]) -> ArticleIndex | None:
    """Load the index in ``directory`` if it was built for ``key``.

    Returns:
        The index, or ``None`` when ``directory`` holds no index or one built
        from something else (another article, model or chunking).

    Raises:
        IndexCorruptError: when the index is there but damaged (a file missing,
            truncated, altered, or unreadable).
    """
    if not directory.exists():
        return None
    manifest = read_manifest(directory)
    if manifest is None:
        raise IndexCorruptError("manifest missing")
    if any(manifest.get(name) != value for name, value in key.items()):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ARTICLE, CHUNK_VECTORS, SENTENCE_VECTORS}:
        raise IndexCorruptError("manifest lists the wrong files")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise IndexCorruptError(f"{name} missing")
        if _sha256(path) != digest:
            raise IndexCorruptError(f"{name} does not match its checksum (truncated or altered)")
    try:
        payload = json.loads((directory / ARTICLE).read_text(encoding="utf-8"))
        article = Article(
            text=payload["text"],
            paragraphs=tuple((int(s), int(e)) for s, e in payload["paragraphs"]),
            title=payload["title"],
            date=payload["date"],
            source=payload["source"],
            fingerprint=payload["fingerprint"],
        )
        sentences = [Sentence(*map(int, row)) for row in payload["sentences"]]
        chunks = [Chunk(*map(int, row)) for row in payload["chunks"]]
        background = Background(float(manifest["background"]["mean"]), float(manifest["background"]["std"]))
        chunk_vectors = faiss.read_index(str(directory / CHUNK_VECTORS))
        sentence_vectors = faiss.read_index(str(directory / SENTENCE_VECTORS))
    except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"unreadable ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if chunk_vectors.ntotal != len(chunks) or sentence_vectors.ntotal != len(sentences):
        raise IndexCorruptError("vector counts do not match the chunks")
    return ArticleIndex(article, sentences, chunks, chunk_vectors, sentence_vectors, manifest, background)


def prune_stale(data_dir: Path, keep: Path, source: str) -> list[Path]:
    """Delete other indexes of the same ``source`` than ``keep``, and temporary directories left by a crash.

    Returns:
        The directories removed.
    """
    removed: list[Path] = []
    if not data_dir.is_dir():
        return removed
    for entry in data_dir.iterdir():
        if not entry.is_dir() or entry == keep:
            continue
        if entry.name.startswith(".") and entry.name.endswith((".tmp", ".old")):
            stale = time.time() - entry.stat().st_mtime > STALE_TEMP_SECONDS
        else:
            try:
                manifest = read_manifest(entry)
            except IndexCorruptError:
                manifest = None
            stale = bool(manifest) and manifest.get("source") == source
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
