"""Vector index: the library-wide faiss index of every sentence vector, with stable ids.

Ids are :func:`index.store.vectors.vector_id` (``key << 20 | sentence``), so removing an
article removes a range of ids and renumbers nothing. It searches exactly
(``IndexIDMap2(IndexFlatIP)``) while the library is small and switches to an
inverted-file index (``IndexIVFScalarQuantizer``, 16-bit) above :data:`EXACT_LIMIT` vectors;
``benchmarks/library_scale.py`` measures the recall of that switch against
exact search.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.config import EXACT_LIMIT
from index.errors import IndexCorruptError
from index.store.vectors import MAX_SENTENCES, CheckedReader, fsync_dir, open_regular, vector_id

if TYPE_CHECKING:
    import faiss

#: IVF lists probed per query: ``benchmarks/library_scale.py`` measured recall of the top 100 at 100k paragraphs
#: (1,024 lists): 0.983 at 48, 0.990 at 64, 0.9999 at 96 (2.2 ms a search).
NPROBE = 96
#: The most IVF lists: more make adding slower (each vector is compared with every list's centre).
MAX_LISTS = 1024
#: Training points per IVF list (faiss wants at least 39).
TRAIN_PER_LIST = 48
#: Seed of the IVF training sample, so every process trains the same index.
SEED = 1234


class VectorIndex:
    """The faiss index of every sentence vector in the library (see the module docstring).

    Args:
        dimension: the vectors' dimension.
        exact_limit: above this many vectors, :meth:`build` makes an IVF index.
        nprobe: IVF lists searched per query.
    """

    def __init__(self, dimension: int, exact_limit: int = EXACT_LIMIT, nprobe: int = NPROBE) -> None:
        import faiss  # imported here: reading the catalog (citebot list, remove) needs no faiss

        faiss.omp_set_num_threads(1)  # one query at a time: threads only add waiting (see README, Threads)
        self.dimension = dimension
        self.exact_limit = exact_limit
        self.nprobe = nprobe
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.kind = "exact"
        self.sizes: dict[int, int] = {}

    @classmethod
    def build(
        cls,
        dimension: int,
        vectors: Mapping[int, np.ndarray],
        exact_limit: int = EXACT_LIMIT,
        nprobe: int = NPROBE,
        add: bool = True,
    ) -> VectorIndex:
        """Return an index for ``vectors`` (``{key: (sentences, dimension) array}``): exact or IVF by their number.

        With ``add=False`` the (trained) index is returned empty, for the caller to add to.
        """
        index = cls(dimension, exact_limit, nprobe)
        total = sum(len(v) for v in vectors.values())
        if total > exact_limit:
            index._index = index._train_ivf(vectors, total)
            index.kind = "ivf"
        if add:
            for key, matrix in vectors.items():
                index.add(key, matrix)
        return index

    def _train_ivf(self, vectors: Mapping[int, np.ndarray], total: int) -> faiss.Index:
        import faiss

        nlist = int(min(MAX_LISTS, max(64, 4 * np.sqrt(total))))
        rng = np.random.default_rng(SEED)
        want = min(total, nlist * TRAIN_PER_LIST)
        keys = sorted(vectors)
        # Draw the sample row by row from the articles: a copy of every vector would double the peak memory.
        sizes = np.array([len(vectors[k]) for k in keys])
        starts = np.concatenate([[0], np.cumsum(sizes)])
        picks = np.sort(rng.choice(total, want, replace=False)) if total > want else np.arange(total)
        owner = np.searchsorted(starts, picks, side="right") - 1
        sample = np.empty((len(picks), self.dimension), dtype=np.float32)
        for n, key in enumerate(keys):
            chosen = owner == n
            if chosen.any():
                sample[chosen] = vectors[key][picks[chosen] - starts[n]]
        quantizer = faiss.IndexFlatIP(self.dimension)
        # Vectors kept as 16-bit floats: half the memory, cosines within about 1e-3.
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dimension, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        ivf.cp.seed = SEED
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.nprobe = self.nprobe
        return ivf

    def save(self, path: Path) -> tuple[int, str]:
        """Write the faiss index to ``path`` atomically and durably (temporary file, fsync, rename); return its size
        and SHA-256 (hashed as it is written)."""
        import faiss

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as handle:

                def write(data: bytes) -> int:
                    digest.update(data)
                    return handle.write(data)

                faiss.write_index(self._index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]  # not in its stubs
                handle.flush()
                os.fsync(handle.fileno())
                size = handle.tell()
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)
        return size, digest.hexdigest()

    @classmethod
    def load(
        cls,
        path: Path,
        dimension: int,
        sizes: Mapping[int, int],
        sha256: str,
        deadline: float,
        exact_limit: int = EXACT_LIMIT,
        nprobe: int = NPROBE,
    ) -> VectorIndex:
        """Return the index :meth:`save` wrote to ``path`` (of SHA-256 ``sha256``), holding ``sizes`` (``{key:
        vectors}``), read by ``deadline`` (a ``time.monotonic()`` value).

        The file (a regular file, checked on its descriptor) is hashed before faiss reads it, so faiss never
        parses (nor allocates for) what citebot did not write; then faiss reads it from the same descriptor.

        Raises:
            IndexCorruptError: when the file is missing, unreadable, altered, or not the index described.
        """
        import faiss

        index = cls(dimension, exact_limit, nprobe)
        try:
            fd, _ = open_regular(path)
        except FileNotFoundError:
            raise IndexCorruptError(f"{path.name} missing") from None
        with os.fdopen(fd, "rb") as handle:
            CheckedReader(handle, path.name, deadline).check(sha256)
            handle.seek(0)
            # By the descriptor's own path where there is one (the file just hashed, read at faiss's speed).
            same = f"/proc/self/fd/{handle.fileno()}"
            try:
                if os.path.exists(same):
                    loaded = faiss.read_index(same)
                else:
                    loaded = faiss.read_index(faiss.PyCallbackIOReader(handle.read))  # type: ignore[attr-defined]
            except RuntimeError as exc:
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
                raise IndexCorruptError(f"{path.name} unreadable ({reason[:200]})") from None
        if isinstance(loaded, faiss.IndexIVF):
            index.kind = "ivf"
        elif not isinstance(loaded, faiss.IndexIDMap2):
            raise IndexCorruptError(f"{path.name} holds a {type(loaded).__name__}, not a citebot index")
        if loaded.d != dimension or loaded.ntotal != sum(sizes.values()):
            raise IndexCorruptError(
                f"{path.name} holds {loaded.ntotal} vectors of dimension {loaded.d}, "
                f"expected {sum(sizes.values())} of dimension {dimension}"
            )
        index._index = loaded
        index.sizes = dict(sizes)
        return index

    @property
    def total(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        """The number of IVF lists (0 for an exact index)."""
        import faiss

        return int(self._index.nlist) if isinstance(self._index, faiss.IndexIVF) else 0

    def add(self, key: int, vectors: np.ndarray) -> None:
        """Add the sentence vectors of stored version ``key`` (ids ``key << 20 | 0..n-1``)."""
        if len(vectors) >= MAX_SENTENCES:
            raise ValueError(f"an article may have at most {MAX_SENTENCES - 1} sentences, this one has {len(vectors)}")
        if key in self.sizes:
            self.remove(key)
        if len(vectors):
            ids = vector_id(key, 0) + np.arange(len(vectors), dtype=np.int64)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.sizes[key] = len(vectors)

    def remove(self, key: int) -> int:
        """Remove every vector of stored version ``key``; return how many were removed."""
        import faiss

        self.sizes.pop(key, None)
        return int(self._index.remove_ids(faiss.IDSelectorRange(vector_id(key, 0), vector_id(key + 1, 0))))

    def search(self, query: np.ndarray, k: int, keys: Collection[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``k`` best ``(cosines, ids)`` for ``query``, only among ``keys`` when given.

        Ids of ``-1`` pad the result when fewer vectors qualify.
        """
        import faiss

        if not self.total or k < 1:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        selector = None
        if keys is not None:
            wanted = [vector_id(key, 0) + np.arange(self.sizes.get(key, 0), dtype=np.int64) for key in sorted(keys)]
            ids = np.concatenate(wanted) if wanted else np.zeros(0, dtype=np.int64)
            if not len(ids):
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            selector = faiss.IDSelectorBatch(ids)
        # faiss's stubs declare SearchParameters() without arguments; its wrapper takes fields as keywords (and
        # keeps the selector alive while the parameters live).
        params: faiss.SearchParameters | None
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector) if selector else None  # type: ignore[call-arg]
        scores, ids = self._index.search(query.reshape(1, -1).astype(np.float32), min(k, self.total), params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]
