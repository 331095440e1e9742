"""The Qdrant engine: the first stage on Qdrant, which does the sharding, the replicas and the ANN.

One collection (an Edge shard) holds two kinds of point, told apart by the payload's ``kind``:

- a sentence (``"s"``): its vector (named ``dense``), id :func:`~index.store.vectors.vector_id`;
- a paragraph (``"p"``): no vector, its terms (as the catalog stems them, joined by spaces) in a text index
  with BM25 scoring, id :data:`PARAGRAPH_BIT` ``|`` ``vector_id(key, paragraph)``.

Both carry the stored version's ``key`` (what a scope filters on) and its ``version`` (the key and the vector
file's checksum), so :meth:`QdrantEngine.sync` sees from a facet over ``version`` which articles the engine holds
and brings it to the catalog: what the catalog no longer has is deleted, what it has that is missing (never written,
or cut short by a crash) is written again. Within a scope, BM25's statistics are the scope's
(``SearchParams(idf=IdfParams(corpus=...))``), as the local engine computes them.

The transport here is **Qdrant Edge** (``qdrant-edge-py``: Qdrant's shard code in-process, pinned exactly since it
is 0.x). An Edge shard is one process's: a second process opening it gets :class:`EngineError`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.search.engine.base import EngineArticle, EngineError, LexicalQuery
from index.store.vectors import split_id, vector_id

log = logging.getLogger(__name__)

#: Set in the id of a paragraph point (sentence points are plain vector ids, far below it).
PARAGRAPH_BIT = 1 << 62
#: Points written per update.
BATCH = 1000
#: HNSW's search breadth: recall of the top 200 sentences, as the first stage asks.
HNSW_EF = 256
#: The file in a shard's folder naming the library (data directory) whose shard it is.
OWNER = "citebot-library.txt"
#: The most stored versions a facet lists (the engine's articles; a million-article archive fits).
MOST_VERSIONS = 10_000_000


def version(key: int, vectors_sha256: str) -> str:
    """Return what identifies a stored version in the engine: its key and its vector file's checksum."""
    return f"{key}-{vectors_sha256[:16]}"


def version_of(data: EngineArticle) -> str:
    """Return :func:`version` of ``data``'s stored version."""
    return version(data.key, data.record.vectors_sha256)


def _import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError:
        raise EngineError("CITEBOT_SEARCH=qdrant needs qdrant-edge-py (pip install 'citebot[qdrant]')") from None
    return qdrant_edge


class QdrantEngine:
    """The first stage on a Qdrant Edge shard in ``path`` (created when missing, unless not ``create``), of
    ``dimension``-wide vectors. Given the ``library`` (its data directory) it serves, the shard is claimed for it
    (:data:`OWNER` names it): a shard of another library is refused, since syncing would delete that one's points."""

    name = "qdrant"

    def __init__(self, path: Path, dimension: int, create: bool = True, library: Path | None = None) -> None:
        self._q = q = _import_edge()
        self.path = Path(path)
        self.dimension = dimension
        if library is not None:
            _claim(self.path, library, create)
        try:
            if (self.path / "wal").exists() or (self.path / "segments").exists():
                self._shard = q.EdgeShard.load(str(self.path))
            elif not create:
                raise EngineError(f"{self.path} holds no Qdrant Edge shard")
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                config = q.EdgeConfig(vectors={"dense": q.EdgeVectorParams(size=dimension, distance=q.Distance.Dot)})
                self._shard = q.EdgeShard.create(str(self.path), config)
                self._create_indexes()
        except EngineError:
            raise
        except Exception as exc:  # qdrant_edge raises plain Exceptions with Rust messages
            raise EngineError(_one_line(exc, self.path)) from None
        self._versions: dict[str, int] | None = None  # version -> key, as the engine holds them

    def _create_indexes(self) -> None:
        q = self._q
        text = q.TextIndexParams(tokenizer=q.TokenizerType.Whitespace, lowercase=False, scoring=True)
        for field, schema in (
            ("kind", q.PayloadSchemaType.Keyword),
            ("key", q.PayloadSchemaType.Integer),
            ("version", q.PayloadSchemaType.Keyword),
            ("terms", text),
        ):
            self._shard.update(q.UpdateOperation.create_field_index(field, schema))

    # --- what the engine holds ----------------------------------------------------------------------

    def versions(self) -> dict[str, int]:
        """Return the stored versions the engine holds (each with its key), read once from a facet."""
        if self._versions is None:
            q = self._q
            response = self._shard.facet(q.FacetRequest("version", limit=MOST_VERSIONS, exact=True))
            self._versions = {str(hit.value): int(str(hit.value).split("-", 1)[0]) for hit in response.hits}
        return self._versions

    def clear(self) -> None:
        """Delete every point (:meth:`sync` writes the library again)."""
        q = self._q
        kinds = q.Filter(must=[q.FieldCondition("kind", match=q.MatchAny(["s", "p"]))])
        try:
            self._shard.update(q.UpdateOperation.delete_points_by_filter(kinds))
            self._shard.optimize()
        except Exception as exc:
            raise EngineError(_one_line(exc, self.path)) from None
        finally:
            self._versions = None

    def sync(self, articles: Mapping[int, EngineArticle], term_of: Sequence[str]) -> int:
        """Make the engine hold exactly ``articles``: delete the versions the catalog no longer has, write those
        missing; return how many articles changed."""
        held = self.versions()
        wanted = {version_of(data): data for data in articles.values()}
        gone = [v for v in held if v not in wanted]
        new = [data for v, data in wanted.items() if v not in held]
        q = self._q
        try:
            for v in gone:
                self._shard.update(q.UpdateOperation.delete_points_by_filter(self._match("version", v)))
                held.pop(v, None)
            for data in new:
                # A version cut short by a crash may be partly there: its points are written again (same ids).
                for batch in _batches(self._points(data, term_of), BATCH):
                    self._shard.update(q.UpdateOperation.upsert_points(batch))
                held[version_of(data)] = data.key
            if gone or new:
                # Edge has no background optimiser: build the HNSW graph and vacuum deleted points (whose BM25
                # statistics would otherwise still count) now.
                self._shard.optimize()
                self._shard.flush()
        except Exception as exc:
            self._versions = None  # read again next time: what was written is what the engine says
            raise EngineError(_one_line(exc, self.path)) from None
        if gone or new:
            log.info("qdrant: %d articles written, %d removed", len(new), len(gone))
        return len(gone) + len(new)

    def _points(self, data: EngineArticle, term_of: Sequence[str]) -> Iterator[Any]:
        q = self._q
        version = version_of(data)
        for s, vector in enumerate(data.vectors):
            payload = {"kind": "s", "key": data.key, "version": version}
            yield q.Point(vector_id(data.key, s), {"dense": vector.astype(np.float32).tolist()}, payload)
        for p in range(len(data.paragraphs)):
            tokens = data.tokens[data.paragraph_tokens[p] : data.paragraph_tokens[p + 1]]
            terms = " ".join(term_of[t] for t in tokens.tolist())
            payload = {"kind": "p", "key": data.key, "version": version, "terms": terms}
            yield q.Point(PARAGRAPH_BIT | vector_id(data.key, p), {}, payload)

    # --- search -------------------------------------------------------------------------------------

    def _match(self, field: str, value: str | int) -> Any:
        q = self._q
        return q.Filter(must=[q.FieldCondition(field, match=q.MatchValue(value))])

    def _scope(self, kind: str, keys: Collection[int] | None) -> Any:
        q = self._q
        must = [q.FieldCondition("kind", match=q.MatchValue(kind))]
        if keys is not None:
            must.append(q.FieldCondition("key", match=q.MatchAny([int(k) for k in keys])))
        return q.Filter(must=must)

    def dense(self, query: np.ndarray, k: int, keys: Collection[int] | None) -> np.ndarray:
        """Return the vector ids of the ``k`` sentences nearest to ``query`` among ``keys``, best first."""
        if k < 1 or (keys is not None and not keys):
            return np.zeros(0, dtype=np.int64)
        q = self._q
        request = q.QueryRequest(
            limit=k,
            query=q.Query.Nearest(query.astype(np.float32).tolist(), using="dense"),
            filter=self._scope("s", keys),
            params=q.SearchParams(hnsw_ef=max(HNSW_EF, k)),
        )
        points = self._query(request)
        return np.array([int(p.id) for p in points], dtype=np.int64)

    def lexical(self, query: LexicalQuery, k: int, keys: Collection[int] | None) -> list[tuple[int, int]]:
        """Return ``(key, paragraph)`` of the ``k`` paragraphs of ``keys`` BM25 scores highest, best first."""
        if k < 1 or not query.terms or (keys is not None and not keys):
            return []
        q = self._q
        scope = self._scope("p", keys)
        request = q.QueryRequest(
            limit=k,
            query=q.TextQuery("terms", " ".join(query.terms)),
            filter=scope,
            params=q.SearchParams(idf=q.IdfParams(corpus=scope)),
        )
        points = [p for p in self._query(request) if p.score > 0]
        keys_, paragraphs = split_id(np.array([int(p.id) & ~PARAGRAPH_BIT for p in points], dtype=np.int64))
        return list(zip(keys_.tolist(), paragraphs.tolist(), strict=True))

    def _query(self, request: Any) -> list[Any]:
        try:
            return list(self._shard.query(request))
        except Exception as exc:
            raise EngineError(_one_line(exc, self.path)) from None

    def close(self) -> None:
        """Flush and close the shard (another process may open it then)."""
        shard, self._shard = getattr(self, "_shard", None), None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()


def _claim(path: Path, library: Path, create: bool) -> None:
    """Check that the shard in ``path`` is ``library``'s (naming it the owner of a new one), else raise."""
    owner = path / OWNER
    mine = str(library.resolve())
    try:
        with owner.open("rb") as file:
            named = file.read(4096).decode("utf-8").strip()
    except FileNotFoundError:
        if not create:
            return
        path.mkdir(parents=True, exist_ok=True)
        owner.write_text(mine + "\n", encoding="utf-8")
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(
            f"{owner} cannot be read ({exc.__class__.__name__}); is {path} a citebot Qdrant shard?"
        ) from None
    if named != mine:
        raise EngineError(
            f"the Qdrant Edge shard in {path} holds the library in {named}, not this one ({mine}); "
            "give each library its own CITEBOT_QDRANT_PATH"
        )


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _one_line(exc: BaseException, path: Path) -> str:
    """Return a one-line message for an Edge failure (its messages are Rust's, sometimes several lines)."""
    text = " ".join(str(exc).split())
    if "WouldBlock" in text:
        return (
            f"the Qdrant Edge shard in {path} is open in another citebot process (an Edge shard is one process's); "
            "stop that one, or run a Qdrant server and set CITEBOT_QDRANT_URL"
        )
    return f"Qdrant Edge ({path}): {text[:300]}"
