"""A Qdrant server or cluster through ``qdrant-client`` (REST), as a :class:`~index.search.engine.qdrant.Transport`.

Many processes share one collection (every front end of a library at once), which the server shards and replicates.
The collection is created when missing, with the same payload indexes as an Edge shard. Failures are one line that
says what to do and names no secret: the server not reachable, too slow, refusing the API key. The client's
*local mode* (``QdrantClient(path=...)``, a Python emulation) runs the same requests without a server, for the
tests; it cannot compute BM25's IDF over a filter (there a scope's BM25 uses the whole collection's) and queries
only the default tokenizer (which splits citebot's stemmed terms as whitespace does, but for terms holding
punctuation).
"""

from __future__ import annotations

import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from index.search.engine.base import EngineError
from index.search.engine.qdrant import FIELDS, HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M, MOST_VERSIONS, EnginePoint

#: Seconds a request may take before the server counts as down.
TIMEOUT = 10.0


def _public(url: str) -> str:
    """Return ``url`` without credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ClientTransport:
    """The ``collection`` of the Qdrant server at ``url`` (with ``api_key``), or, with ``path``, of the client's
    local mode in that folder; ``dimension``-wide vectors. A missing collection is created, unless not ``create``."""

    def __init__(
        self,
        collection: str,
        dimension: int,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        timeout: float = TIMEOUT,
        create: bool = True,
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("give exactly one of url and path")
        try:
            from qdrant_client import QdrantClient, models
        except ImportError:
            raise EngineError("CITEBOT_QDRANT_URL needs qdrant-client (pip install 'citebot[qdrant]')") from None
        self._m = models
        self.collection = collection
        self.local = path is not None
        self.where = f"{path} (local mode)" if path is not None else _public(url or "")
        if path is not None:
            self._client = QdrantClient(path=str(path))
        else:
            with warnings.catch_warnings():
                # "Api key is used with an insecure connection": on loopback or a private network that is the
                # operator's choice (docs/qdrant.md says to use https elsewhere); a warning would break one-line output.
                warnings.simplefilter("ignore", UserWarning)
                self._client = QdrantClient(
                    url=url,
                    api_key=api_key,
                    timeout=int(max(timeout, 1)),
                    prefer_grpc=False,
                    check_compatibility=False,  # one request less, and no warning when the server is down
                )
        if not self._call("collection_exists", collection):
            if not create:
                raise EngineError(f"the collection {collection!r} of Qdrant at {self.where} is not written yet")
            self._create(dimension)

    def _create(self, dimension: int) -> None:
        m = self._m
        vectors = {"dense": m.VectorParams(size=dimension, distance=m.Distance.DOT)}
        graph = m.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT)
        self._call("create_collection", self.collection, vectors_config=vectors, hnsw_config=graph)
        for field, kind in FIELDS:
            if kind == "text":
                scoring = m.TextScoringParams(type=m.TextScoringType.BM25)
                if self.local:  # local mode queries only the default tokenizer (it splits citebot's terms alike)
                    schema: Any = m.TextIndexParams(type=m.TextIndexType.TEXT, scoring=scoring)
                else:
                    schema = m.TextIndexParams(
                        type=m.TextIndexType.TEXT,
                        tokenizer=m.TokenizerType.WHITESPACE,
                        lowercase=False,
                        scoring=scoring,
                    )
            elif self.local:
                continue  # local mode has no other payload indexes (it warns, and filters without them)
            else:
                schema = {"keyword": m.PayloadSchemaType.KEYWORD, "integer": m.PayloadSchemaType.INTEGER}[kind]
            self._call("create_payload_index", self.collection, field, schema)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(self._message(exc)) from None

    def _message(self, exc: BaseException) -> str:
        status = getattr(exc, "status_code", None)
        name = type(exc).__name__
        if status in (401, 403):
            return f"Qdrant at {self.where} refused the API key (HTTP {status}); check CITEBOT_QDRANT_API_KEY"
        if status is not None:
            return f"Qdrant at {self.where} answered HTTP {status}; search is unavailable until it recovers"
        text = " ".join(str(exc).split())
        if "timed out" in text.lower() or "timeout" in name.lower():
            return f"Qdrant at {self.where} did not answer in time; search is unavailable until it does"
        if self.local:
            return f"Qdrant local mode ({self.where}): {name}: {text[:200]}"
        return f"Qdrant at {self.where} is not reachable ({name}); search is unavailable until it is"

    def _filter(self, kind: str | None = None, keys: list[int] | None = None) -> Any:
        m = self._m
        must: list[Any] = [] if kind is None else [m.FieldCondition(key="kind", match=m.MatchValue(value=kind))]
        if keys is not None:
            must.append(m.FieldCondition(key="key", match=m.MatchAny(any=keys)))
        return m.Filter(must=must)

    def versions(self) -> list[str]:
        """Return the ``version`` values the points carry."""
        response = self._call("facet", self.collection, key="version", limit=MOST_VERSIONS, exact=True)
        return [str(hit.value) for hit in response.hits]

    def delete(self, field: str, values: list[str]) -> None:
        """Delete the points whose ``field`` is one of ``values``."""
        m = self._m
        chosen = m.Filter(must=[m.FieldCondition(key=field, match=m.MatchAny(any=values))])
        self._call("delete", self.collection, points_selector=m.FilterSelector(filter=chosen), wait=True)

    def upsert(self, points: list[EnginePoint]) -> None:
        """Write ``points`` (waiting until the server applied them)."""
        m = self._m
        made = [m.PointStruct(id=i, vector={} if v is None else {"dense": v}, payload=p) for i, v, p in points]
        self._call("upsert", self.collection, points=made, wait=True)

    def nearest(self, vector: list[float], k: int, keys: list[int] | None) -> list[int]:
        """Return the ids of the ``k`` sentences nearest to ``vector`` among ``keys``."""
        params = None if self.local else self._m.SearchParams(hnsw_ef=max(HNSW_EF, k))
        response = self._call(
            "query_points",
            self.collection,
            query=vector,
            using="dense",
            query_filter=self._filter(None, keys),  # only sentences have vectors
            limit=k,
            search_params=params,
        )
        return [int(p.id) for p in response.points]

    def bm25(self, text: str, k: int, keys: list[int] | None) -> list[tuple[int, float]]:
        """Return ``(id, score)`` of the ``k`` paragraphs BM25 scores highest, the IDF over the scope's (a server)."""
        m = self._m
        scope = self._filter("p", keys)
        params = None if self.local else m.SearchParams(idf=m.IdfParams(corpus=scope))
        response = self._call(
            "query_points",
            self.collection,
            query=m.TextQuery(text=text),
            using="terms",
            query_filter=scope,
            limit=k,
            search_params=params,
        )
        return [(int(p.id), float(p.score)) for p in response.points]

    def settle(self) -> None:
        """Nothing: the server indexes and vacuums in the background, and ``wait=True`` made the writes visible."""

    def close(self) -> None:
        """Close the client's connections."""
        self._call("close")
