"""Vectors: each article's sentence vectors in a file of its own, and the ids they take in the search index.

A vector file is written once, atomically (a temporary file, fsync, rename,
fsync of the directory), and never rewritten: a new version of an article is a
new file. Its SHA-256 is in the catalog, so a truncated or altered file is
caught on load. A sentence's vector id is ``key << 20 | sentence``
(:func:`vector_id`), so removing an article removes a range of ids from the search
index (:mod:`index.search.vector_index`) and renumbers nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import IO

import numpy as np

from index.errors import IndexCorruptError

#: Sentence ids of one article take the low bits of a vector id; the stored version's key the rest.
SENTENCE_BITS = 20
MAX_SENTENCES = 1 << SENTENCE_BITS


def vector_id(key: int, sentence: int) -> int:
    """Return the faiss id of sentence ``sentence`` of stored version ``key``."""
    return (key << SENTENCE_BITS) | sentence


def split_id(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the keys and the sentence numbers of faiss ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> SENTENCE_BITS, ids & (MAX_SENTENCES - 1)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the file system can)."""
    with contextlib.suppress(OSError):  # not every file system can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """Return a read-only descriptor of ``path`` and its ``fstat``, refusing anything but a regular file.

    Opened without waiting (``O_NONBLOCK``: a named pipe put there would otherwise block the open until a writer
    came), and checked on the descriptor, so what is read is what was checked.

    Raises:
        FileNotFoundError: when there is no such file.
        IndexCorruptError: when it is not a regular file, or cannot be opened.
    """
    name = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IndexCorruptError(f"{name} unreadable ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IndexCorruptError(f"{name} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


class CheckedReader:
    """Reads an open file in order, hashing what it reads (SHA-256), and gives up past a deadline.

    Args:
        handle: the file, opened for reading (or anything with its ``read``).
        name: its name, for messages.
        deadline: the ``time.monotonic()`` value past which reading is given up.
    """

    def __init__(self, handle: IO[bytes], name: str, deadline: float) -> None:
        self.handle, self.name, self.deadline = handle, name, deadline
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        """Return the next ``size`` bytes (fewer only at the end of the file; all that is left if negative), hashed.

        Raises:
            IndexCorruptError: when the deadline has passed or the file cannot be read.
        """
        try:
            chunks, wanted = [], size if size >= 0 else 1 << 62
            while wanted > 0:
                if time.monotonic() > self.deadline:
                    raise IndexCorruptError(f"{self.name} is taking too long to read")
                chunk = self.handle.read(min(wanted, READ_CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                wanted -= len(chunk)
        except OSError as exc:
            raise IndexCorruptError(f"{self.name} unreadable ({exc.strerror or exc})") from None
        data = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        self.digest.update(data)
        self.count += len(data)
        return data

    def check(self, sha256: object) -> None:
        """Read what is left, then compare the SHA-256 of everything read with ``sha256``.

        Raises:
            IndexCorruptError: when they differ (or the rest cannot be read in time).
        """
        while self.read(READ_CHUNK):
            pass
        if self.digest.hexdigest() != sha256:
            raise IndexCorruptError(f"{self.name} does not match its checksum (altered)")


#: Bytes read at a time by :class:`CheckedReader` (between looks at its deadline).
READ_CHUNK = 1 << 22


def save_vectors(path: Path, vectors: np.ndarray) -> str:
    """Write ``vectors`` (float32) to ``path`` atomically and durably; return the file's SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def load_vectors(path: Path, sha256: str, rows: int, dimension: int | None = None, mapped: bool = False) -> np.ndarray:
    """Return the vectors stored at ``path``, checked against their catalog entry (memory-mapped if ``mapped``).

    Raises:
        IndexCorruptError: when the file is missing, altered, or of the wrong shape.
    """
    try:
        fd, _ = open_regular(path)  # not a named pipe put in its place: that would block the read for ever
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path.name} missing") from None
    except OSError as exc:
        raise IndexCorruptError(f"{path.name} unreadable ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IndexCorruptError(f"{path.name} does not match its checksum (truncated or altered)")
    try:
        if mapped:
            # Mapped, not read: the pages a question touches are the only ones in memory, and the OS may drop them.
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            vectors = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise IndexCorruptError(f"{path.name} unreadable ({exc})") from None
    if vectors.ndim != 2 or len(vectors) != rows or (dimension is not None and vectors.shape[1] != dimension):
        raise IndexCorruptError(f"{path.name} holds {vectors.shape} vectors, expected {rows} rows")
    if vectors.dtype != np.float32:
        raise IndexCorruptError(f"{path.name} holds {vectors.dtype} values, expected float32")
    if not np.isfinite(
        np.frombuffer(data, dtype=np.float32, count=vectors.size, offset=len(data) - 4 * vectors.size)
    ).all():
        raise IndexCorruptError(f"{path.name} holds values that are not finite")
    return vectors


def map_vectors(
    path: str | Path, rows: int, dimension: int, identity: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Return a vector file checked before by :func:`load_vectors`, memory-mapped and not read, and its identity.

    Nothing is hashed: ``identity`` (``(size, mtime_ns, inode)``, what this returned when the file was checked) must
    still match, so a file replaced or rewritten since is caught; its rows are the file's last ``rows x dimension``
    floats (a ``.npy`` file's data follows its header).

    Raises:
        IndexCorruptError: when the file is missing, unreadable, too short, or no longer the file checked.
    """
    name = os.path.basename(path)
    try:
        fd, st = open_regular(path)
    except FileNotFoundError:
        raise IndexCorruptError(f"{name} missing") from None
    try:
        found = (st.st_size, st.st_mtime_ns, st.st_ino)
        if identity is not None and found != identity:
            raise IndexCorruptError(f"{name} changed since it was checked")
        data = rows * dimension * 4
        if rows < 0 or st.st_size < data + 64:
            raise IndexCorruptError(f"{name} is {st.st_size} bytes, too short for {rows} vectors")
        if not rows:
            return np.zeros((0, dimension), dtype=np.float32), found
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise IndexCorruptError(f"{name} unreadable ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    vectors = np.frombuffer(mapped, dtype=np.float32, count=rows * dimension, offset=st.st_size - data)
    return vectors.reshape(rows, dimension), found
