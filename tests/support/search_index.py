"""Tampering with a persisted search index (``search/index.npz``) the way the hostile tests do."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from index.search import persisted


def rewrite_member(folder: Path, suffix: str, write: Callable[[zipfile.ZipFile, str, bytes], None]) -> None:
    """Rewrite ``index.npz`` with the member whose name ends with ``suffix`` written by ``write(archive, name,
    content)``, the others stored as they were (a valid zip: every CRC-32 right)."""
    path = folder / persisted.STATE
    with zipfile.ZipFile(path) as old:
        members = [(info.filename, old.read(info)) for info in old.infolist()]
    (target,) = [name for name, _ in members if name.endswith(suffix)]
    # Deflated (quickly) where ``write`` opens a member by name; the others stored, as citebot writes them.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as new:
        for name, content in members:
            if name == target:
                write(new, name, content)
            else:
                new.writestr(name, content, compress_type=zipfile.ZIP_STORED)


def rewrite_stamp(folder: Path, change: Callable[[dict[str, object]], None]) -> None:
    """Rewrite ``index.npz`` with its stamp changed by ``change``."""

    def write(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
        stamp = json.loads(np.load(io.BytesIO(content)).tobytes().decode())
        change(stamp)
        buffer = io.BytesIO()
        np.save(buffer, np.frombuffer(json.dumps(stamp).encode(), dtype=np.uint8))
        archive.writestr(name, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)

    rewrite_member(folder, "stamp.npy", write)
