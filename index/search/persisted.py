"""Persisted search index: what readers derive from the library, kept on disk so the next process opens it.

In ``DATA/search/`` (beside ``vectors/``; derived data, so deleting the folder loses nothing):

* ``index.npz``: the stamp (what it was built from: the catalog generation and each article's key, vector
  checksum, background and vector-file identity) and every array the library index holds (postings, per-article
  arrays, the articles' text), in one uncompressed zip: each member's CRC-32 is checked as it is read;
* ``vectors-TOKEN.faiss``: the faiss index, named in the stamp (with its size);
* ``.index.npz.lock``: taken (without waiting) by the process writing them.

Writes are atomic (temporary file, fsync, rename): the faiss file first under a new name, then ``index.npz`` that
names it, then older faiss files are deleted. A reader that opened the previous ``index.npz`` and finds its faiss
file gone reads again (:func:`read` retries). See :class:`index.search.library_index.LibraryIndex` for when it is
written and what is checked on opening.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import Timeout

from index.errors import IndexCorruptError
from index.store.locking import file_lock
from index.store.vectors import fsync_dir

if TYPE_CHECKING:
    from index.search.vector_index import VectorIndex

#: Bumped whenever what is persisted, or how it is derived, changes: an index of another format is rebuilt.
FORMAT = 1
FOLDER = "search"
STATE = "index.npz"


@dataclass
class Persisted:
    """A persisted index as read: its stamp, its arrays and the path of its faiss file."""

    stamp: dict[str, Any]
    arrays: dict[str, np.ndarray]
    faiss: Path


def read(folder: Path) -> Persisted | None:
    """Return the persisted index in ``folder``, or ``None`` when there is none.

    Raises:
        IndexCorruptError: when it is damaged (truncated, altered, or its faiss file missing or of the wrong size).
    """
    path = folder / STATE
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise IndexCorruptError(f"{path.name} unreadable ({str(exc)[:200]})") from None
    try:
        stamp = json.loads(arrays.pop("stamp").tobytes().decode())
        arrays = dict(_widen(name, array) for name, array in arrays.items())
        faiss = folder / stamp["faiss"]
        if not isinstance(stamp, dict) or stamp.get("format") != FORMAT or faiss.parent != folder:
            raise ValueError("not a citebot search index of this format")
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path.name} holds no valid stamp ({str(exc)[:200]})") from None
    try:
        size = os.stat(faiss).st_size
    except OSError:
        raise IndexCorruptError(f"{faiss.name} missing") from None
    if size != stamp.get("faiss_size"):
        raise IndexCorruptError(f"{faiss.name} is {size} bytes, {stamp.get('faiss_size')} were written")
    return Persisted(stamp, arrays, faiss)


def write(
    folder: Path, state: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]], vectors: VectorIndex
) -> bool:
    """Persist ``vectors`` and the stamp and arrays ``state()`` returns in ``folder``.

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
            with contextlib.suppress(OSError):
                leftover.unlink()
        name = f"vectors-{secrets.token_hex(8)}.faiss"
        size = vectors.save(folder / name)
        stamp = {**stamp, "format": FORMAT, "faiss": name, "faiss_size": size}
        encoded = np.frombuffer(json.dumps(stamp).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                members = {"stamp": encoded, **dict(_narrow(name, array) for name, array in arrays.items())}
                np.savez(handle, **members)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle
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
                with contextlib.suppress(OSError):
                    old.unlink()
    finally:
        lock.release()
    return True


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
