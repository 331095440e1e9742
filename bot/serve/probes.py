"""Health and metrics of a citebot process: ``/healthz``, ``/readyz`` and ``/metrics`` (``citebot serve`` mounts
:func:`probe_routes` beside its API; the Telegram bot serves them alone, with :class:`ProbeServer`, on
``TELEGRAM_METRICS_PORT``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
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


def probe_app(metrics: Metrics, ready: Readiness, count: Count) -> Starlette:
    """Return an app of only :func:`probe_routes`, whose refusals are ``{"error": "..."}`` with their status."""

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPError):
            status, message = exc.status, exc.message
        elif isinstance(exc, StarletteHTTPException):
            status, message = exc.status_code, "no such page; this port serves /healthz, /readyz and /metrics"
        else:  # a CitebotError from the library or the engine: the process is up, not ready
            status, message = 503, str(exc)
        return JSONResponse({"error": message}, status_code=status)

    handlers = {HTTPError: refused, StarletteHTTPException: refused, CitebotError: refused}
    return Starlette(routes=probe_routes(metrics, ready, count), exception_handlers=handlers)


class ProbeServer:
    """:func:`probe_app` served by uvicorn inside a running event loop (the Telegram bot's), on ``host``:``port``.

    The port is bound by :meth:`start` itself, so a port in use is one :class:`CitebotError` naming ``setting``;
    uvicorn neither takes the process's signals (the bot's own shutdown stops it) nor configures logging (the
    bot's handlers, which keep its token out of the log, stay as they are).
    """

    def __init__(self, app: Starlette, host: str, port: int, setting: str) -> None:
        import uvicorn

        class Embedded(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the embedding process handles SIGTERM / Ctrl-C

        config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None, access_log=False)
        self.server = Embedded(config)
        self.host, self.port, self.setting = host, port, setting
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind the port and start answering (it answers when this returns).

        Raises:
            CitebotError: when the port cannot be bound (in use, not allowed, an address this machine lacks).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror or exc})"
            raise CitebotError(f"{self.setting}: {self.host}:{self.port} {why}; pick another port") from None
        self._task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # uvicorn failed to start: raise what it raised

    async def stop(self) -> None:
        """Stop answering and close the port (the open connections are closed, not waited for)."""
        if self._task is None:
            return
        self.server.should_exit = self.server.force_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
        self._task = None
