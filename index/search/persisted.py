"""Persisted search index: what readers derive from the library, kept on disk so the next process opens it.

In ``DATA/search/`` (beside ``vectors/``; derived data, so deleting the folder loses nothing):

* ``index.npz``: the stamp (what it was built from: the catalog generation and each article's key, vector
  checksum, background and vector-file identity; the SHA-256 of every other member and of the faiss file) and every
  array the library index holds (postings, per-article arrays, the articles' text), in one uncompressed zip;
* ``vectors-TOKEN.faiss``: the faiss index, named in the stamp (with its size and SHA-256);
* ``.index.npz.lock``: taken (without waiting) by the process writing them.

Writes are atomic (temporary file, fsync, rename): the faiss file first under a new name, then ``index.npz`` that
names it, then older faiss files are deleted. A reader that opened the previous ``index.npz`` and finds its faiss
file gone reads again (:func:`read` retries). It is read as untrusted: regular files only, no larger than the
catalog can need, nothing inflated or allocated beyond what is stored, every byte checked against its checksum as it
is read (:func:`read`). See :class:`index.search.library_index.LibraryIndex` for when it is
written and what is checked on opening.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import secrets
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from filelock import Timeout

from index.errors import IndexCorruptError
from index.store.locking import file_lock
from index.store.vectors import READ_CHUNK, fsync_dir, open_regular

if TYPE_CHECKING:
    from index.search.vector_index import VectorIndex

#: Bumped whenever what is persisted, or how it is derived, changes: an index of another format is rebuilt.
FORMAT = 2
FOLDER = "search"
STATE = "index.npz"
#: The longest a reader spends reading ``index.npz``, and then the faiss file, before it gives them up as unreadable
#: (and rebuilds): a sound one at 100k paragraphs takes about a second.
READ_SECONDS = 60.0
#: The most bytes the stamp may take: settings, names and checksums, no arrays.
STAMP_MOST = 1 << 20
#: The kinds of array a member may hold (booleans, integers, floats, text): no objects, nothing is unpickled.
KINDS = "biufU"
#: What the persisted files may take, at most, per article, paragraph, sentence and character of the catalog
#: (several times what they take: an index written before articles were removed is larger than the catalog says),
#: and beyond that; with the faiss file's bytes per vector dimension. See :func:`capacity`.
NPZ_BYTES = {"article": 8192, "paragraph": 512, "sentence": 640, "char": 96}
FAISS_BYTES_PER_DIMENSION = 16
SLACK_BYTES = 16 << 20


class OtherFormatError(IndexCorruptError):
    """The persisted index was written by another version of citebot (not damaged: rebuilt, as it is not read)."""


@dataclass
class Persisted:
    """A persisted index as read: its stamp, its arrays (each checked against its checksum) and its faiss file."""

    stamp: dict[str, Any]
    arrays: dict[str, np.ndarray]
    faiss: Path

    def load_vectors(self, sizes: dict[int, int], **options: int) -> VectorIndex:
        """Return the faiss index (checked against its checksum), holding ``sizes``, read within :data:`READ_SECONDS`.

        Raises:
            IndexCorruptError: when it is missing, altered, unreadable or not the index described.
        """
        from index.search.vector_index import VectorIndex

        dimension = int(self.stamp["dimension"])
        return VectorIndex.load(self.faiss, dimension, sizes, self.stamp["faiss_sha256"], deadline(), **options)


def capacity(articles: int, paragraphs: int, sentences: int, chars: int, dimension: int) -> tuple[int, int]:
    """Return the most bytes ``index.npz`` and the faiss file may take for a catalog of these totals."""
    npz = (
        NPZ_BYTES["article"] * articles
        + NPZ_BYTES["paragraph"] * paragraphs
        + NPZ_BYTES["sentence"] * sentences
        + NPZ_BYTES["char"] * chars
    )
    return npz + SLACK_BYTES, FAISS_BYTES_PER_DIMENSION * dimension * sentences + SLACK_BYTES


def deadline() -> float:
    """Return the ``time.monotonic()`` value by which reading the persisted index must be done."""
    return time.monotonic() + READ_SECONDS


def read(folder: Path, most: tuple[int, int] | None = None) -> Persisted | None:
    """Return the persisted index in ``folder``, or ``None`` when there is none.

    Only regular files are read (checked on the open descriptor: a named pipe is not waited for), at most ``most``
    bytes of ``index.npz`` and of the faiss file (see :func:`capacity`), within :data:`READ_SECONDS`. Nothing is
    inflated (a compressed member is refused), each member's header must declare the shape its bytes hold before
    anything is allocated, and each member's SHA-256 must be the stamp's.

    Raises:
        OtherFormatError: when it was written by another version of citebot.
        IndexCorruptError: when it is damaged (truncated, altered, too large, not a regular file, or its faiss file
            missing or of the wrong size).
    """
    path = folder / STATE
    try:
        fd, st = open_regular(path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if most is not None and st.st_size > most[0]:
            raise IndexCorruptError(f"{path.name} is {st.st_size:,} bytes, more than its library can need")
        try:
            with zipfile.ZipFile(handle) as archive:
                stamp, arrays = _members(archive, fd, st.st_size, deadline())
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise IndexCorruptError(f"{path.name} unreadable ({str(exc)[:200]})") from None
    try:
        arrays = dict(_widen(name, array) for name, array in arrays.items())
        faiss = folder / stamp["faiss"]
        if faiss.parent != folder or not isinstance(stamp.get("faiss_sha256"), str):
            raise ValueError("its stamp names no faiss file")
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(f"{path.name} holds no valid stamp ({str(exc)[:200]})") from None
    try:
        size = os.stat(faiss).st_size
    except OSError:
        raise IndexCorruptError(f"{faiss.name} missing") from None
    if size != stamp.get("faiss_size"):
        raise IndexCorruptError(f"{faiss.name} is {size} bytes, {stamp.get('faiss_size')} were written")
    if most is not None and size > most[1]:
        raise IndexCorruptError(f"{faiss.name} is {size:,} bytes, more than its library can need")
    return Persisted(stamp, arrays, faiss)


def _members(archive: zipfile.ZipFile, fd: int, size: int, by: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return the stamp and the arrays of ``archive`` (open at ``fd``, ``size`` bytes), each checked, read by ``by``."""
    infos = archive.infolist()
    members = {info.filename.removesuffix(".npy"): info for info in infos}
    if len(members) != len(infos) or not all(info.filename.endswith(".npy") for info in infos):
        raise ValueError("it holds members that are not arrays, or one twice")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{info.filename} is compressed, which citebot never writes")
    if sum(info.file_size for info in infos) > size:
        raise ValueError(f"its members add up to more than its {size:,} bytes")
    if "stamp" not in members or members["stamp"].file_size > STAMP_MOST:
        raise ValueError("it holds no stamp, or one too large")
    stamp = json.loads(_member(fd, size, members.pop("stamp"), None, by).tobytes().decode())
    if not isinstance(stamp, dict):
        raise ValueError("its stamp is not an object")
    if stamp.get("format") != FORMAT:
        raise OtherFormatError(f"written in format {stamp.get('format')!r}, this citebot reads format {FORMAT}")
    checksums = stamp.get("members")
    if not isinstance(checksums, dict) or set(checksums) != set(members):
        raise ValueError("its stamp does not list the arrays it holds")
    return stamp, {name: _member(fd, size, info, checksums[name], by) for name, info in members.items()}


#: The most bytes a member's ``.npy`` header may take (numpy's own limit is 10,000).
HEADER_MOST = 16384


def _member(fd: int, size: int, info: zipfile.ZipInfo, sha256: str | None, by: float) -> np.ndarray:
    """Return the array member ``info`` of the zip open at ``fd`` (``size`` bytes) holds, read by ``by``.

    Its header is checked against its stored size before anything is allocated, then its bytes (read straight into
    the array) against ``sha256`` (``None``: the zip's CRC-32).
    """
    local = os.pread(fd, 30, info.header_offset)  # the member's local header: where its bytes start
    if len(local) != 30 or local[:4] != b"PK\x03\x04" or info.compress_size != info.file_size:
        raise ValueError(f"{info.filename} has no sound local header")
    names, extra = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + names + extra
    if start + info.file_size > size:
        raise ValueError(f"{info.filename} runs past the end of the file")
    head = io.BytesIO(os.pread(fd, min(info.file_size, HEADER_MOST), start))
    version = np.lib.format.read_magic(head)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{info.filename}: .npy version {version}")
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(head)
    if dtype.hasobject or dtype.kind not in KINDS:
        raise ValueError(f"{info.filename} holds {dtype} values")
    skip = head.tell()
    count = math.prod(shape)
    if count * dtype.itemsize != info.file_size - skip:
        raise ValueError(f"{info.filename} declares {shape} values, its data is {info.file_size - skip:,} bytes")
    digest, crc = hashlib.sha256(head.getvalue()[:skip]), zlib.crc32(head.getvalue()[:skip])
    array = np.empty(count, dtype=dtype)
    view, at = array.view(np.uint8).data, 0
    while at < len(view):
        if time.monotonic() > by:
            raise IndexCorruptError(f"{STATE} is taking too long to read")
        got = os.preadv(fd, [view[at : at + READ_CHUNK]], start + skip + at)
        if not got:
            raise EOFError(f"{info.filename} ends early")
        digest.update(view[at : at + got])
        if sha256 is None:
            crc = zlib.crc32(view[at : at + got], crc)
        at += got
    if sha256 is None and crc != info.CRC:
        raise ValueError(f"{info.filename} does not match its CRC-32")
    if sha256 is not None and digest.hexdigest() != sha256:
        raise ValueError(f"{info.filename} does not match its checksum (altered)")
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


class _Hashing:
    """A file for :func:`numpy.lib.format.write_array` that passes on what is written and hashes it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        """Return how many bytes of ``data`` were written (all), having hashed them."""
        self.digest.update(data)
        return self.out.write(data)


def write(
    folder: Path, state: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]], vectors: VectorIndex
) -> bool:
    """Persist ``vectors`` and the stamp and arrays ``state()`` returns in ``folder``, each with its SHA-256.

    Returns ``False``, having computed nothing, when another process holds the lock (it is writing them).

    Raises:
        OSError: when the folder cannot be written (a read-only library).
    """
    folder.mkdir(exist_ok=True)
    lock = file_lock(folder / STATE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        stamp, arrays = state()
        for leftover in folder.glob(".*.tmp"):  # a writer that died holding the lock
            _unlink_regular(leftover)
        name = f"vectors-{secrets.token_hex(8)}.faiss"
        size, sha256 = vectors.save(folder / name)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    checksums = {}
                    for member, array in (_narrow(n, a) for n, a in arrays.items()):
                        checksums[member] = _write_member(archive, member, array)
                    stamp = {
                        **stamp, "format": FORMAT, "faiss": name, "faiss_size": size, "faiss_sha256": sha256,
                        "members": checksums,
                    }  # fmt: skip
                    encoded = np.frombuffer(json.dumps(stamp).encode(), dtype=np.uint8)
                    _write_member(archive, "stamp", encoded)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / STATE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
            raise
        fsync_dir(folder)
        for old in folder.glob("vectors-*.faiss"):
            if old.name != name:
                _unlink_regular(old)
    finally:
        lock.release()
    return True


def _write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> str:
    """Write ``array`` as the member ``name.npy`` of ``archive`` (stored, not compressed); return its SHA-256."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
        hashing = _Hashing(out)
        np.lib.format.write_array(hashing, np.asanyarray(array), allow_pickle=False)
    return hashing.digest.hexdigest()


def _unlink_regular(path: Path) -> None:
    """Delete ``path`` if it is a regular file (what citebot wrote there; anything else put there is left alone)."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()


#: Suffix of the name of an int64 array stored as int32 (its values fit): half the bytes to read.
NARROW = ".int32"


def _narrow(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    """Return an int64 array whose values fit in int32 as int32, named so :func:`_widen` restores it."""
    if array.dtype == np.int64 and array.size and array.min() >= -(2**31) and array.max() < 2**31:
        return name + NARROW, array.astype(np.int32)
    return name, array


def _widen(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    """Return the name and the array :func:`_narrow` stored (int64 again)."""
    if name.endswith(NARROW):
        return name.removesuffix(NARROW), array.astype(np.int64)
    return name, array


def pack(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``parts`` joined (along their first axis) and the offsets where each starts (and one past the end)."""
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return np.concatenate(parts), offsets


def unpack(joined: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Return the parts :func:`pack` joined (views of ``joined``)."""
    bounds = offsets.tolist()
    return [joined[a:b] for a, b in itertools.pairwise(bounds)]
