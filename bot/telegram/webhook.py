"""The webhook server: Telegram posts updates to it (``TELEGRAM_WEBHOOK_URL``), instead of the bot polling.

It replaces python-telegram-bot's own (tornado) webhook server, which reads every
request's body, up to 100 MB, before it looks at the secret: five 10.5 MB bodies
with a wrong secret took the bot's memory from 226 to 335 MB. This one reads the
headers first and refuses a request without the secret (403) or with a body over
:data:`MAX_BODY` (413) before reading its body, and reads the rest in chunks, up
to the cap. An update python-telegram-bot cannot parse is skipped with one log
line and answered 200, as in polling mode (:func:`~bot.telegram.transport.readable_updates`),
so Telegram does not send it again and again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from telegram import Bot, Update
from telegram.ext import ExtBot
from tornado.httpserver import HTTPServer

from bot.telegram.transport import readable_updates

log = logging.getLogger("citebot.telegram")

#: The largest update body accepted, in bytes. Telegram's updates are a few kilobytes (a message of 4,096
#: characters with its entities and the message it replies to stays well under 100 KB).
MAX_BODY = 1024 * 1024
#: The header in which Telegram sends the secret given to setWebhook.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Webhook:
    """The HTTP server for Telegram's updates posted to ``url``, listening on ``listen``:``port`` (a reverse proxy
    in front forwards to it; the path is the URL's): each update that comes with ``secret`` is put in ``queue``
    (the application's update queue)."""

    def __init__(self, url: str, listen: str, port: int, secret: str, bot: Bot, queue: asyncio.Queue) -> None:
        self.url = url
        path = urlsplit(url).path
        self.listen = listen
        self.port = port
        self.secret = secret
        self.bot = bot
        self.queue = queue
        app = _App([(f"/{path.strip('/')}/?" if path.strip("/") else "/", _UpdateHandler, {"hook": self})])
        self._server = HTTPServer(app, max_body_size=MAX_BODY)

    async def start(self) -> None:
        """Start listening (the port is bound when this returns)."""
        self._server.listen(self.port, address=self.listen)

    async def stop(self) -> None:
        """Stop listening and close the open connections."""
        self._server.stop()
        await self._server.close_all_connections()

    async def take(self, body: bytes) -> None:
        """Queue the update in ``body`` (JSON); one python-telegram-bot cannot parse is logged and skipped.

        Raises:
            ValueError: when ``body`` is not a JSON object.
        """
        raw = json.loads(body)
        if not isinstance(raw, dict):
            raise ValueError("an update is a JSON object")
        for readable in readable_updates([raw]):
            update = Update.de_json(readable, self.bot)
            if isinstance(self.bot, ExtBot):
                self.bot.insert_callback_data(update)
            await self.queue.put(update)


class _App(tornado.web.Application):
    """The tornado application of the webhook: quiet (a flood of refused requests must not flood the log)."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Log nothing per request."""


@tornado.web.stream_request_body
class _UpdateHandler(tornado.web.RequestHandler):
    """One POST from Telegram: the headers are checked before any of the body is read."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, hook: Webhook) -> None:
        """Set up the request's state (tornado calls this for every request)."""
        self.hook = hook
        self.chunks: list[bytes] = []

    def prepare(self) -> None:
        """Refuse a request without the secret (403) or whose body is too large (413), before reading the body."""
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.hook.secret.encode()):
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise tornado.web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)

    def data_received(self, chunk: bytes) -> None:
        """Keep a chunk of the body (a body sent without a length is cut off at :data:`MAX_BODY` by the server)."""
        self.chunks.append(chunk)

    async def post(self) -> None:
        """Queue the update; a body that is not JSON is refused with 400."""
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        try:
            await self.hook.take(b"".join(self.chunks))
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
            log.warning("the webhook got a body that is not an update: %s", exc)
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        self.set_status(HTTPStatus.OK)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer an error with its status line only, no page."""
        self.finish()

    def log_exception(self, *args: Any) -> None:
        """Log nothing: every refusal is deliberate and said in its status."""
