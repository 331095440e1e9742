"""The ASGI app of ``citebot serve`` (Starlette): the HTTP API, the page at ``/``, health and metrics.

Starlette rather than FastAPI: citebot's request bodies are three fields checked by hand with the same one-line
messages as the CLI, so a validation framework would add a second set of error messages, and the OpenAPI
description is one small document (:mod:`bot.serve.openapi`). Every model or search call runs in one worker
thread (:attr:`Service.searching`), as in the Telegram bot, so the event loop never blocks and the
:class:`~index.search.retrieve.Searcher` is never used by two threads at once; an add runs in another.

Errors are JSON ``{"error": "..."}``: 400 a body that is not a JSON object, 401 a missing or wrong admin token (or a
server without one), 404 an unknown article, 413 a body over the limit, 422 a field that is wrong, 429 over the rate
limit, 503 the library or its engine not ready, or a question over the time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.serve.errors import HTTPError
from bot.serve.limits import RateLimiter
from bot.serve.metrics import Metrics
from bot.serve.openapi import openapi
from bot.serve.probes import NOT_READY, count_library, probe_routes, readiness
from bot.settings import Settings
from index.config import MAX_K
from index.errors import CitebotError, LibraryError, QuestionError
from index.search.engine import EngineError
from index.search.retrieve import Searcher
from index.store.library import Library

log = logging.getLogger("citebot.serve")
T = TypeVar("T")


@dataclass
class Service:
    """What the routes share: settings, the searcher (opened at start-up), workers, metrics and the limiter."""

    settings: Settings
    open_searcher: Callable[[], Searcher]
    searching: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "citebot-search"))
    adding: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "citebot-add"))
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(init=False)
    searcher: Searcher | None = None
    writer: Library | None = None
    failed: str | None = None

    def __post_init__(self) -> None:
        api = self.settings.api
        self.limiter = RateLimiter(api.burst, api.per_minute)

    @property
    def ready(self) -> Searcher:
        """The searcher; raises a 503 while it is not open."""
        if self.searcher is None:
            raise HTTPError(503, self.failed or NOT_READY, "not_ready")
        return self.searcher

    async def search(self, job: Callable[[], T], timeout: float | None = None, stage: str | None = None) -> T:
        """Run ``job`` in the search thread; a 503 when it takes over ``timeout`` seconds (it still finishes).
        The wait is timed as the ``queue`` stage, the job itself as ``stage`` when given."""
        future = asyncio.get_running_loop().run_in_executor(self.searching, self.metrics.timed(job, stage))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise HTTPError(503, f"the question took over {timeout:g} s; try again", "timeout") from None

    def library_to_write(self) -> Library:
        """The library adds and removes go through (in the add thread): its own connection, as Telegram's."""
        if self.writer is None:
            from bot.loading import open_library

            self.writer = open_library(self.settings)
        return self.writer


# --- helpers ------------------------------------------------------------------------------------------


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _body(request: Request, limit: int) -> bytes:
    """Return the request body, refusing one over ``limit`` bytes (413) before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the body is over {limit} bytes", "too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is over {limit} bytes", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_object(request: Request, limit: int) -> dict[str, Any]:
    raw = await _body(request, limit)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, "the body is not JSON (send a JSON object, UTF-8)", "bad_request") from None
    if not isinstance(value, dict):
        raise HTTPError(400, f"the body is JSON {type(value).__name__}, not an object", "bad_request")
    return value


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(request: Request) -> None:
    wait = _service(request).limiter.take(_client(request))
    if wait:
        raise HTTPError(429, f"too many requests; try again in {wait:.0f} s", "rate_limited")


def _admin(request: Request) -> None:
    """Refuse (401) a request without the admin token, or any when the server has none (read-only)."""
    token = _service(request).settings.api.token
    if token is None:
        raise HTTPError(401, "this server is read-only: it was started without CITEBOT_API_TOKEN", "unauthorized")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise HTTPError(401, "a missing or wrong token (send Authorization: Bearer CITEBOT_API_TOKEN)", "unauthorized")


def _scope(value: object) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(type(i) is int and i > 0 for i in value):
        raise HTTPError(422, '"in" is a list of article ids (whole numbers above 0), e.g. [1, 3]', "invalid")
    return value


def _k(value: object, default: int) -> int:
    if value is None:
        return default
    if type(value) is not int or not 1 <= value <= MAX_K:
        raise HTTPError(422, f'"k" is a whole number from 1 to {MAX_K}', "invalid")
    return value


# --- routes -------------------------------------------------------------------------------------------


async def ask(request: Request) -> Response:
    """Answer a question: the same object ``citebot ask --json`` writes."""
    from index.answer import answer

    started = time.perf_counter()
    service = _service(request)
    _limit(request)
    body = await _json_object(request, service.settings.api.max_body)
    question = body.get("question")
    if not isinstance(question, str):
        raise HTTPError(422, '"question" is required: the question, as text', "invalid")
    scope, k = _scope(body.get("in")), _k(body.get("k"), service.settings.top_k)
    unknown = set(body) - {"question", "in", "k"}
    if unknown:
        raise HTTPError(422, f"unknown field {sorted(unknown)[0]!r} (the fields are question, in, k)", "invalid")
    searcher = service.ready
    settings = service.settings

    def job() -> dict[str, Any]:
        if scope is not None:
            searcher.library.resolve(scope)
        return answer(
            searcher,
            question,
            k=k,
            min_score=settings.min_score,
            scope=scope,
            uncertain_score=settings.uncertain_score,
        ).to_dict()

    reply = await service.search(job, settings.api.timeout, stage="answer")
    service.metrics.questions.labels(reply["verdict"]).inc()
    service.metrics.latency.labels("request").observe(time.perf_counter() - started)
    return JSONResponse(reply)


async def list_articles(request: Request) -> Response:
    """List the library's articles: the objects ``citebot list --json`` writes."""
    service = _service(request)
    _limit(request)
    searcher = service.ready

    def job() -> list[dict[str, Any]]:
        searcher.articles_index  # noqa: B018 - notice what another process added or removed
        return [r.to_dict() for r in searcher.library.records()]

    return JSONResponse(await service.search(job, service.settings.api.timeout))


def _article_id(request: Request) -> int:
    raw = request.path_params["article_id"]
    if not raw.isdigit() or int(raw) < 1:
        raise HTTPError(422, f"{raw!r} is not an article id (a whole number above 0)", "invalid")
    return int(raw)


async def article_context(request: Request) -> Response:
    """Return a paragraph of an article with its neighbours (the page's "More context")."""
    from index.answer import ArticleRef, context_range

    service = _service(request)
    _limit(request)
    article_id = _article_id(request)
    raw = request.query_params.get("paragraph", "")
    if not raw.isdigit() or int(raw) < 1:
        raise HTTPError(422, "give the paragraph as ?paragraph=N (a whole number above 0)", "invalid")
    paragraph = int(raw)
    searcher = service.ready

    def job() -> dict[str, Any]:
        data = searcher.articles_index.article(article_id)
        if data is None:
            raise HTTPError(404, f"no article with id {article_id} (GET /v1/articles lists them)", "not_found")
        total = len(data.paragraphs)
        try:
            numbers = context_range(paragraph, total)
        except ValueError as exc:
            raise HTTPError(422, str(exc), "invalid") from None
        shown = []
        for number in numbers:
            item: dict[str, Any] = {"paragraph": number, "text": data.paragraph_text(number - 1)}
            if data.pages:
                item["page"] = data.pages[number - 1]
            shown.append(item)
        ref = ArticleRef.of(data.record).to_dict()
        return {"article": ref, "paragraph": paragraph, "paragraphs": total, "context": shown}

    return JSONResponse(await service.search(job, service.settings.api.timeout))


async def add_article(request: Request) -> Response:
    """Add an article (admin): ``{"url": ...}``, or a file's bytes with its name in ``?name=``."""
    from index.reading.fetch import is_web_url
    from index.sources import add_loaded, load, load_upload

    service = _service(request)
    _admin(request)
    _limit(request)
    searcher = service.ready
    fetch = service.settings.fetch
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        body = await _json_object(request, service.settings.api.max_body)
        url = body.get("url")
        if not isinstance(url, str) or not is_web_url(url):
            raise HTTPError(422, '"url" is required: an http:// or https:// URL', "invalid")
        source: Callable[[], Any] = lambda: load(url, fetch)  # noqa: E731
    else:
        name = request.query_params.get("name", "")
        if not name or "/" in name or "\\" in name or len(name) > 200:
            raise HTTPError(422, "give the file's name as ?name=FILE.txt (no folders)", "invalid")
        data = await _body(request, fetch.max_bytes)
        if not data:
            raise HTTPError(422, "the file is empty", "invalid")
        source = lambda: load_upload(data, name, f"upload:{name}")  # noqa: E731

    def job() -> dict[str, Any]:
        try:
            loaded = source()
        except CitebotError:
            service.metrics.fetches_refused.inc()
            raise
        result = add_loaded(service.library_to_write(), searcher.embedder, loaded)
        return {"status": result.status, "article": result.record.to_dict()}

    future = asyncio.get_running_loop().run_in_executor(service.adding, job)
    reply = await future
    return JSONResponse(reply, status_code=201 if reply["status"] == "added" else 200)


async def remove_article(request: Request) -> Response:
    """Remove an article (admin)."""
    service = _service(request)
    _admin(request)
    _limit(request)
    article_id = _article_id(request)
    service.ready  # noqa: B018 - 503 while the library is not open

    def job() -> dict[str, Any]:
        library = service.library_to_write()
        (record,) = library.resolve([article_id])
        library.remove([article_id])
        return {"status": "removed", "article": record.to_dict()}

    return JSONResponse(await asyncio.get_running_loop().run_in_executor(service.adding, job))


async def openapi_json(request: Request) -> Response:
    """The OpenAPI description of the API."""
    return JSONResponse(openapi())


#: The page's files, served from the package (no build step).
_STATIC = resources.files("bot.serve").joinpath("static")


def _page() -> bytes:
    """Return the page with the verdicts' wording filled in from :mod:`index.answer` (their one home)."""
    from index.answer import not_found, uncertain

    text = _STATIC.joinpath("index.html").read_text(encoding="utf-8")
    for name, value in {
        "not_found_one": not_found(1),
        "not_found_many": not_found(2),
        "uncertain_one": uncertain(1),
        "uncertain_many": uncertain(2),
    }.items():
        text = text.replace("{{" + name + "}}", html.escape(value, quote=True))
    return text.encode("utf-8")


def _static(name: str, media_type: str) -> Callable[[Request], Any]:
    body = _page() if name == "index.html" else _STATIC.joinpath(name).read_bytes()

    async def serve(request: Request) -> Response:
        headers = {
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(body, media_type=media_type, headers=headers)

    return serve


# --- the app ------------------------------------------------------------------------------------------


async def _error(request: Request, exc: Exception) -> Response:
    """Turn a refusal or a citebot error into ``{"error": "..."}`` with its status (and count it)."""
    service = _service(request)
    if isinstance(exc, HTTPError):
        status, message, kind = exc.status, exc.message, exc.kind
    elif isinstance(exc, StarletteHTTPException):
        status, message, kind = exc.status_code, _ROUTING.get(exc.status_code, str(exc.detail)), "not_found"
    elif isinstance(exc, QuestionError):
        status, message, kind = 422, str(exc), "invalid"
    elif isinstance(exc, EngineError):
        status, message, kind = 503, str(exc), "engine"
    elif isinstance(exc, LibraryError) and str(exc).startswith("no article with id"):
        status, message, kind = 404, str(exc), "not_found"
    elif isinstance(exc, CitebotError):
        status, message, kind = 422, str(exc), "refused"
    else:
        log.error("%s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        status, message, kind = 500, "citebot failed on this request (see its log)", "internal"
    service.metrics.errors.labels(kind).inc()
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


#: What a request to no route, or with the wrong method, is told.
_ROUTING = {404: "no such page; the API is under /v1 (see /openapi.json)", 405: "this method is not allowed here"}


def make_app(service: Service) -> Starlette:
    """Return the ASGI app over ``service`` (the searcher is opened in the search thread at start-up)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def opening() -> None:
            try:
                service.searcher = service.open_searcher()
            except CitebotError as exc:
                service.failed = f"citebot cannot open the library: {exc}"
                log.error("%s", service.failed)

        opened = loop.run_in_executor(service.searching, opening)
        try:
            yield
        finally:
            opened.cancel()
            service.searching.shutdown(wait=False, cancel_futures=True)
            service.adding.shutdown(wait=False, cancel_futures=True)

    timeout = service.settings.api.timeout
    routes = [
        Route("/", _static("index.html", "text/html; charset=utf-8")),
        Route("/static/citebot.js", _static("citebot.js", "text/javascript; charset=utf-8")),
        Route("/static/citebot.css", _static("citebot.css", "text/css; charset=utf-8")),
        Route("/v1/ask", ask, methods=["POST"]),
        Route("/v1/articles", list_articles, methods=["GET"]),
        Route("/v1/articles", add_article, methods=["POST"]),
        Route("/v1/articles/{article_id}", remove_article, methods=["DELETE"]),
        Route("/v1/articles/{article_id}/context", article_context, methods=["GET"]),
        *probe_routes(
            service.metrics,
            lambda: service.search(partial(readiness, service.ready, service.metrics), timeout),
            lambda: service.search(partial(count_library, service.ready, service.metrics), timeout),
        ),
        Route("/openapi.json", openapi_json),
    ]
    handlers = {HTTPError: _error, CitebotError: _error, StarletteHTTPException: _error, Exception: _error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.service = service
    return app
