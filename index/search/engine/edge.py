"""Qdrant Edge: Qdrant's shard code in-process (``qdrant-edge-py``, pinned exactly since it is 0.x), as a
:class:`~index.search.engine.qdrant.Transport`.

An Edge shard is one process's (a second open fails "Can't init WAL: WouldBlock": said here in one line) and one
library's (:data:`OWNER` in its folder names the data directory; another library is refused, since its sync would
delete the first one's points). Edge has no background optimiser, so :meth:`EdgeTransport.settle` optimises: it
builds the HNSW graph and vacuums deleted points, whose BM25 statistics would otherwise still count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from index.search.engine.base import EngineError
from index.search.engine.qdrant import FIELDS, HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M, MOST_VERSIONS, EnginePoint

#: Below this many kilobytes of vectors a segment is searched exactly (Qdrant's default; HnswIndexConfig wants it).
FULL_SCAN_KB = 10_000
#: The file in a shard's folder naming the library (data directory) whose shard it is.
OWNER = "citebot-library.txt"


def _import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError:
        raise EngineError("CITEBOT_SEARCH=qdrant needs qdrant-edge-py (pip install 'citebot[qdrant]')") from None
    return qdrant_edge


class EdgeTransport:
    """A Qdrant Edge shard in ``path`` for ``dimension``-wide vectors: created when missing (unless not
    ``create``), and claimed for ``library`` (a data directory) when given."""

    def __init__(self, path: Path, dimension: int, create: bool = True, library: Path | None = None) -> None:
        self._q = q = _import_edge()
        self.path = Path(path)
        self.where = str(self.path)
        if library is not None:
            _claim(self.path, library, create)
        self._shard: Any = None
        try:
            if (self.path / "wal").exists() or (self.path / "segments").exists():
                self._shard = q.EdgeShard.load(str(self.path))
            elif not create:
                raise EngineError(f"the Qdrant Edge shard in {self.path} is not written yet")
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                graph = q.HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB)
                dense = q.EdgeVectorParams(size=dimension, distance=q.Distance.Dot)
                config = q.EdgeConfig(vectors={"dense": dense}, hnsw_config=graph)
                self._shard = q.EdgeShard.create(str(self.path), config)
                for field, kind in FIELDS:
                    self._shard.update(q.UpdateOperation.create_field_index(field, self._schema(kind)))
        except EngineError:
            raise
        except Exception as exc:  # qdrant_edge raises plain Exceptions with Rust messages
            raise EngineError(_one_line(exc, self.path)) from None

    def _schema(self, kind: str) -> Any:
        q = self._q
        if kind == "text":
            return q.TextIndexParams(tokenizer=q.TokenizerType.Whitespace, lowercase=False, scoring=True)
        return {"keyword": q.PayloadSchemaType.Keyword, "integer": q.PayloadSchemaType.Integer}[kind]

    def _call(self, method: str, *args: Any) -> Any:
        if self._shard is None:
            raise EngineError(f"the Qdrant Edge shard in {self.path} is closed")
        try:
            return getattr(self._shard, method)(*args)
        except Exception as exc:
            raise EngineError(_one_line(exc, self.path)) from None

    def _filter(self, kind: str | None = None, keys: list[int] | None = None) -> Any:
        q = self._q
        must = [] if kind is None else [q.FieldCondition("kind", match=q.MatchValue(kind))]
        if keys is not None:
            must.append(q.FieldCondition("key", match=q.MatchAny(keys)))
        return q.Filter(must=must)

    def versions(self) -> list[str]:
        """Return the ``version`` values the points carry."""
        response = self._call("facet", self._q.FacetRequest("version", limit=MOST_VERSIONS, exact=True))
        return [str(hit.value) for hit in response.hits]

    def delete(self, field: str, values: list[str]) -> None:
        """Delete the points whose ``field`` is one of ``values``."""
        q = self._q
        chosen = q.Filter(must=[q.FieldCondition(field, match=q.MatchAny(values))])
        self._call("update", q.UpdateOperation.delete_points_by_filter(chosen))

    def upsert(self, points: list[EnginePoint]) -> None:
        """Write ``points``."""
        q = self._q
        made = [q.Point(i, {} if v is None else {"dense": v}, payload) for i, v, payload in points]
        self._call("update", q.UpdateOperation.upsert_points(made))

    def nearest(self, vector: list[float], k: int, keys: list[int] | None) -> list[int]:
        """Return the ids of the ``k`` sentences nearest to ``vector`` among ``keys``."""
        q = self._q
        request = q.QueryRequest(
            limit=k,
            query=q.Query.Nearest(vector, using="dense"),
            filter=self._filter(None, keys),  # only sentences have vectors: a kind filter would only slow HNSW
            params=q.SearchParams(hnsw_ef=max(HNSW_EF, k)),
        )
        return [int(p.id) for p in self._call("query", request)]

    def bm25(self, text: str, k: int, keys: list[int] | None) -> list[tuple[int, float]]:
        """Return ``(id, score)`` of the ``k`` paragraphs BM25 scores highest, the IDF over the scope's."""
        q = self._q
        scope = self._filter("p", keys)
        request = q.QueryRequest(
            limit=k,
            query=q.TextQuery("terms", text),
            filter=scope,
            params=q.SearchParams(idf=q.IdfParams(corpus=scope)),
        )
        return [(int(p.id), float(p.score)) for p in self._call("query", request)]

    def settle(self) -> None:
        """Optimise (HNSW, vacuum) and flush."""
        self._call("optimize")
        self._call("flush")

    def close(self) -> None:
        """Flush and close the shard (another process may open it then)."""
        shard, self._shard = self._shard, None
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


def _one_line(exc: BaseException, path: Path) -> str:
    """Return a one-line message for an Edge failure (its messages are Rust's, sometimes several lines)."""
    text = " ".join(str(exc).split())
    if "WouldBlock" in text:
        return (
            f"the Qdrant Edge shard in {path} is open in another citebot process (an Edge shard is one process's); "
            "stop that one, or run a Qdrant server and set CITEBOT_QDRANT_URL"
        )
    return f"Qdrant Edge ({path}): {text[:300]}"
