"""Health and metrics of a citebot process: ``/healthz``, ``/readyz`` and ``/metrics`` (``citebot serve`` mounts
:func:`probe_routes` beside its API; they are kept apart so that another front end can serve them too)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.serve.errors import HTTPError
from bot.serve.metrics import Metrics
from index.errors import CitebotError
from index.search.retrieve import Searcher

#: Said by ``/readyz`` (and by the API) while the library and the model are still loading.
NOT_READY = "citebot is still opening the library and loading the model; try again in a few seconds"

#: Says whether the process can answer: the body of a 200, or raises (an :class:`HTTPError` 503, a CitebotError).
Readiness = Callable[[], Awaitable[dict[str, Any]]]
#: Brings the library gauges up to date before a scrape (failures are ignored: the scrape still answers).
Count = Callable[[], Awaitable[object]]


def count_library(searcher: Searcher, metrics: Metrics) -> int:
    """Set the library gauges from the catalog (in the search thread); return how many articles it holds."""
    records = searcher.library.records()
    metrics.articles.set(len(records))
    metrics.paragraphs.set(sum(r.paragraphs for r in records))
    return len(records)


def readiness(searcher: Searcher, metrics: Metrics) -> dict[str, Any]:
    """Return ``/readyz``'s body (in the search thread): the catalog read, the model loaded, the engine reached."""
    engine = searcher.index.engine  # on Qdrant, opening it reaches the server (EngineError if it cannot)
    return {"status": "ready", "articles": count_library(searcher, metrics), "engine": engine.name}


def probe_routes(metrics: Metrics, ready: Readiness, count: Count) -> list[Route]:
    """Return the routes ``/healthz`` (the process is up), ``/readyz`` (``ready``) and ``/metrics``."""

    async def healthz(request: Request) -> Response:
        """Say the process is up."""
        return JSONResponse({"status": "up"})

    async def readyz(request: Request) -> Response:
        """Say whether the library is open, the model loaded and the engine reachable (503 and why, if not)."""
        return JSONResponse(await ready())

    async def metrics_text(request: Request) -> Response:
        """The metrics, in Prometheus' text format."""
        with contextlib.suppress(HTTPError, CitebotError):
            await count()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics_text)]
