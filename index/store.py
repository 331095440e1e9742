"""Store: an article's index on disk (faiss vectors, chunk metadata, a manifest).

An index lives in its own directory under the data directory, named after
what it was built from. Writes are atomic: everything is written into a
hidden directory beside it, then renamed into place, so a crash leaves either
the old index or the new one, never half of one. On load every file is checked
against the hashes in the manifest, so a truncated or altered file is caught
(:class:`~index.errors.IndexCorruptError`) before faiss reads it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
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
from index.errors import DataDirError, IndexCorruptError
from index.ingest import Article
from index.locking import hold

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


def check_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` if needed and prove it is a writable directory; return it.

    Called before the model loads, so an unusable directory costs a second, not a whole build.
    Permission is proved by creating and deleting a file, not by ``os.access`` alone: that
    also catches read-only file systems, and gives the right answer for root (who passes
    every permission check on an ordinary read-only directory, and really can write there).

    Raises:
        DataDirError: when it is a file, lies under a file, or cannot be created or written.
    """
    where, fix = f"data directory {data_dir}", "set CITEBOT_DATA_DIR to a writable directory"
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"{where} is a file, not a directory; {fix}")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"{where} cannot be created ({_reason(exc)}); {fix}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise DataDirError(f"{where} is not writable (permission denied); {fix}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=data_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"{where} is not writable ({_reason(exc)}); {fix}") from None
    return data_dir


def _reason(exc: OSError) -> str:
    """Return the short system reason of ``exc`` ("Permission denied"), without the path it names."""
    return exc.strerror or type(exc).__name__


def save_index(index: ArticleIndex, directory: Path) -> None:
    """Write ``index`` to ``directory`` atomically, replacing what was there.

    The files are written into a temporary directory next to ``directory`` and
    the manifest, which lists their hashes, is written last; then, holding the
    directory's lock (so concurrent writers take turns), the temporary
    directory is renamed into place.
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
        with hold(directory, "writing the index"):
            if directory.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
                os.replace(directory, trash)  # trash is an empty directory: rename replaces it
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
    try:
        data = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"manifest unreadable ({exc.__class__.__name__})") from None
    return _parse_manifest(data)


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"manifest unreadable ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError("manifest is not a JSON object")
    return manifest


class _Replaced(Exception):
    """The index directory was replaced by another process while it was being read."""


#: How often a reader tries again when a writer replaces the index under it, and the first pause (doubling).
LOAD_ATTEMPTS = 6
RETRY_PAUSE = 0.02


def load_index(directory: Path, key: dict[str, Any]) -> ArticleIndex | None:
    """Load the index in ``directory`` if it was built for ``key``.

    Another process may replace the directory while it is read (see
    :func:`save_index`); the reader then tries again, so it sees the old index
    or the new one, never a mixture or a spurious error.

    Returns:
        The index, or ``None`` when ``directory`` holds no index or one built
        from something else (another article, model or chunking).

    Raises:
        IndexCorruptError: when the index is there but damaged (a file missing,
            truncated, altered, or unreadable, or numbers in the manifest out of range).
    """
    pause = RETRY_PAUSE
    for _ in range(LOAD_ATTEMPTS - 1):
        try:
            return _load_once(directory, key)
        except _Replaced:
            time.sleep(pause)
            pause *= 2
    try:
        return _load_once(directory, key)
    except _Replaced:
        raise IndexCorruptError("kept changing while being read") from None


#: A writer's ``.old`` directory younger than this means a replacement is under way (older: left by a crash).
REPLACING_SECONDS = 60


def _being_replaced(directory: Path) -> bool:
    """Return whether a writer is between moving ``directory`` away and renaming the new one into place."""
    now = time.time()
    for trash in directory.parent.glob(f".{glob.escape(directory.name)}.*.old"):
        with contextlib.suppress(OSError):
            if now - trash.stat().st_mtime < REPLACING_SECONDS:
                return True
    return False


def _load_once(directory: Path, key: dict[str, Any]) -> ArticleIndex | None:
    """Read the index once; raise :class:`_Replaced` when a writer swapped it while it was read."""
    try:
        manifest_bytes = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        if (directory / MANIFEST).exists() or _being_replaced(directory):
            raise _Replaced from None  # swapped while we looked: read the new one
        if directory.exists():
            raise IndexCorruptError("manifest missing") from None
        return None
    except OSError as exc:
        raise IndexCorruptError(f"manifest unreadable ({exc.__class__.__name__})") from None
    manifest = _parse_manifest(manifest_bytes)
    if any(manifest.get(name) != value for name, value in key.items()):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ARTICLE, CHUNK_VECTORS, SENTENCE_VECTORS}:
        raise IndexCorruptError("manifest lists the wrong files")
    data: dict[str, bytes] = {}
    problem = ""
    for name, digest in files.items():
        try:
            data[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            problem = f"{name} missing"
            break
        except OSError as exc:
            raise IndexCorruptError(f"{name} unreadable ({exc.__class__.__name__})") from None
        if hashlib.sha256(data[name]).hexdigest() != digest:
            problem = f"{name} does not match its checksum (truncated or altered)"
            break
    if problem:
        try:
            replaced = (directory / MANIFEST).read_bytes() != manifest_bytes
        except FileNotFoundError:
            replaced = True
        if replaced or _being_replaced(directory):
            raise _Replaced
        raise IndexCorruptError(problem)
    # Every byte parsed below is the byte that was hashed: no file is opened twice.
    try:
        payload = json.loads(data[ARTICLE].decode("utf-8"))
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
        chunk_vectors = _faiss_from_bytes(data[CHUNK_VECTORS])
        sentence_vectors = _faiss_from_bytes(data[SENTENCE_VECTORS])
    except (KeyError, TypeError, ValueError, RuntimeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"unreadable ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    index = ArticleIndex(article, sentences, chunks, chunk_vectors, sentence_vectors, manifest, background)
    check_consistent(index)
    return index


def _faiss_from_bytes(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def check_consistent(index: ArticleIndex) -> None:
    """Check that the numbers read back agree with each other and lie where a real index puts them.

    Raises:
        IndexCorruptError: naming the first number that does not.
    """
    m, a = index.manifest, index.article
    bg = index.background
    if not (math.isfinite(bg.mean) and -1.0 <= bg.mean <= 1.0):
        raise IndexCorruptError(f"background mean {bg.mean!r} is not a cosine (a finite number from -1 to 1)")
    if not (math.isfinite(bg.std) and 0.0 <= bg.std <= 1.0):
        raise IndexCorruptError(f"background spread {bg.std!r} is not a finite number from 0 to 1")
    counts = {"paragraphs": len(a.paragraphs), "sentences": len(index.sentences), "chunks": len(index.chunks)}
    for name, actual in counts.items():
        if name in m and m[name] != actual:
            raise IndexCorruptError(f"manifest says {m[name]!r} {name}, the index holds {actual}")
    if index.chunk_vectors.ntotal != len(index.chunks) or index.sentence_vectors.ntotal != len(index.sentences):
        raise IndexCorruptError("vector counts do not match the chunks")
    if index.chunk_vectors.d != index.sentence_vectors.d:
        raise IndexCorruptError("chunk and sentence vectors differ in dimension")
    dimension = str(m.get("model", "")).rpartition(":")[2]
    if dimension.isdigit() and int(dimension) != index.chunk_vectors.d:
        raise IndexCorruptError(f"vectors have {index.chunk_vectors.d} dimensions, the model {dimension}")
    size, paragraphs = len(a.text), len(a.paragraphs)
    spans = [*a.paragraphs, *((s.start, s.end) for s in index.sentences), *((c.start, c.end) for c in index.chunks)]
    if any(not 0 <= start <= end <= size for start, end in spans):
        raise IndexCorruptError("a span lies outside the article text")
    units = [s.paragraph for s in index.sentences] + [c.paragraph for c in index.chunks]
    if any(not 0 <= p < paragraphs for p in units):
        raise IndexCorruptError("a sentence or chunk names a paragraph the article lacks")
    if any(not 0 <= c.first < c.last <= len(index.sentences) for c in index.chunks):
        raise IndexCorruptError("a chunk names sentences the article lacks")


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
