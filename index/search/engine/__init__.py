"""First-stage engines: where the library's sentence vectors and paragraphs are searched for candidates.

:class:`~index.search.engine.local.LocalEngine` (the default: faiss and BM25 postings in memory) or
:class:`~index.search.engine.qdrant.QdrantEngine` (Qdrant), chosen by :attr:`index.config.IndexConfig.search`
(``CITEBOT_SEARCH``) through :func:`open_engine`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.search.engine.base import CandidateEngine, EngineArticle, EngineError, LexicalQuery

if TYPE_CHECKING:
    from pathlib import Path

    from index.config import IndexConfig
    from index.search.engine.local import LocalParts

__all__ = ["CandidateEngine", "EngineArticle", "EngineError", "LexicalQuery", "open_engine"]


def open_engine(config: IndexConfig, dimension: int, local: LocalParts, library: Path | None = None) -> CandidateEngine:
    """Return the engine ``config`` names (:attr:`~index.config.IndexConfig.search`): Qdrant for ``dimension``-wide
    vectors and the library in ``library`` (its data directory), or the local one over ``local`` (the library
    index's own faiss index and postings).

    Raises:
        EngineError: the engine cannot be opened (Qdrant not installed, its shard open in another process...).
    """
    if config.search == "qdrant":
        from index.search.engine.qdrant import QdrantEngine, Transport

        transport: Transport
        if config.qdrant_url:
            from index.search.engine.client import ClientTransport

            transport = ClientTransport(
                config.qdrant_collection, dimension, url=config.qdrant_url, api_key=config.qdrant_api_key
            )
        else:
            from index.search.engine.edge import EdgeTransport

            transport = EdgeTransport(config.qdrant_directory(), dimension, library=library)
        return QdrantEngine(transport)
    from index.search.engine.local import LocalEngine

    return LocalEngine(local)
