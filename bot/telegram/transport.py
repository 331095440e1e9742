"""Talking to the Bot API through trouble: flood control, outages, a refused token, updates PTB cannot read.

Every request the bot makes but getUpdates passes through :class:`PatientRateLimiter`
(a python-telegram-bot rate limiter):

- flood control: Telegram's limits are kept (30 messages a second, 20 a minute
  per group) and a 429 is waited out as long as its ``retry_after`` says, as
  many times as Telegram says it;
- outages: a request that fails on the network, with a 5xx or with a 401 is
  retried with backoff for up to ``TELEGRAM_DELIVERY_RETRY_SECONDS``, then the
  give-up is logged and the error raised;
- the typing indicator is sent once, never retried, never rate limited;
- getUpdates (which python-telegram-bot never passes to a rate limiter) goes
  through :class:`PollingRequest`: a 401 is left to the polling loop's backoff
  instead of ending polling, and an update python-telegram-bot cannot parse is
  replaced by an empty one with its ``update_id`` (logged once), so the offset
  moves past it;
- a 401 on every call for ``TELEGRAM_UNAUTHORIZED_EXIT_SECONDS`` sets
  :attr:`TokenWatch.fatal`, on which the bot exits with one line;
- a chat that cannot be written to (403, "chat not found": :func:`unreachable`) is
  never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter
from telegram.request import HTTPXRequest, RequestData

log = logging.getLogger("citebot.telegram")

#: Waits before the retries of a failed request (seconds); the last one repeats until the budget is spent.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
#: Requests that expire at Telegram within seconds: retried at most this long, whatever the budget.
QUICK_ENDPOINTS = {"answerCallbackQuery": 5.0, "answerInlineQuery": 5.0}
#: Never retried, never rate limited: a nicety that must not hold anything up.
UNTHROTTLED = {"sendChatAction"}
#: How early the event loop's timer may fire against ``time.monotonic`` (seconds).
TIMER_SLACK = 0.05
#: The polling loop logs at most one failure line in this many seconds.
POLL_LOG_EVERY = 30.0


def unreachable(error: BaseException | None) -> bool:
    """Return whether ``error`` says the chat cannot be written to any more: 403 (the bot was kicked from the
    group, blocked by the user, the user deactivated) or 400 "chat not found". Trying again will not help."""
    if isinstance(error, Forbidden):
        return True
    return isinstance(error, BadRequest) and "chat not found" in str(error).lower()


class TokenWatch:
    """Tracks whether Telegram refuses the token (401); :attr:`fatal` is set when it has for too long."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None
        self.fatal = asyncio.Event()
        self.reason = ""

    def refused(self) -> bool:
        """Note a 401; return whether it has lasted past the limit (and set :attr:`fatal` if so).

        The first 401 also sets a timer for the limit, so the bot exits on time even when the next request
        would come much later (the polling loop backs off up to 30 s between tries).
        """
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("Telegram refuses TELEGRAM_BOT_TOKEN (401 Unauthorized); retrying for %.0f s", self.limit)
            with contextlib.suppress(RuntimeError):  # no running loop: the next 401 checks the limit
                asyncio.get_running_loop().call_later(self.limit, self._expire, now)
        self._expire(self.since)
        return self.fatal.is_set()

    def _expire(self, since: float) -> None:
        """Set :attr:`fatal` if the token has been refused, without a request accepted, since ``since`` for
        at least the limit."""
        now = time.monotonic()
        if self.since != since or self.fatal.is_set() or now - since < self.limit - TIMER_SLACK:
            return
        self.reason = (
            f"Telegram has refused TELEGRAM_BOT_TOKEN (401 Unauthorized) for {now - since:.0f} s: it was "
            "revoked or changed; put the current token from @BotFather in the environment or .env and restart"
        )
        self.fatal.set()

    def accepted(self) -> None:
        """Note a request Telegram accepted: the token works (again)."""
        if self.since is not None:
            log.warning("Telegram accepts the token again after %.0f s", time.monotonic() - self.since)
            self.since = None


def readable_updates(result: Any) -> Any:
    """Return getUpdates' raw ``result`` with each update python-telegram-bot cannot parse replaced by an
    empty update carrying only its ``update_id`` (so the offset moves past it); log each once."""
    if not isinstance(result, list):
        return result
    readable = []
    for raw in result:
        try:
            Update.de_json(raw, None)
        except Exception as exc:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if not isinstance(update_id, int):
                log.warning("skipped an update without an update_id: %s", type(exc).__name__)
                continue
            log.warning("skipped update %d: it cannot be read (%s: %s)", update_id, type(exc).__name__, exc)
            readable.append({"update_id": update_id})
            continue
        readable.append(raw)
    return readable


class PollingErrors:
    """The polling loop's error callback: one log line per :data:`POLL_LOG_EVERY` seconds, not one per try."""

    def __init__(self) -> None:
        self.last = -POLL_LOG_EVERY
        self.skipped = 0

    def __call__(self, error: TelegramError) -> None:
        """Log ``error`` unless a line was logged recently."""
        now = time.monotonic()
        if now - self.last < POLL_LOG_EVERY:
            self.skipped += 1
            return
        more = f" ({self.skipped} more failures since the last line)" if self.skipped else ""
        log.warning("polling Telegram failed: %s; retrying%s", error, more)
        self.last, self.skipped = now, 0


class PatientRateLimiter(AIORateLimiter):
    """Telegram's flood limits, 429s waited out as asked, and retries across outages (see the module)."""

    def __init__(self, delivery_seconds: float, token: TokenWatch) -> None:
        super().__init__(max_retries=sys.maxsize)  # a 429 is waited out every time Telegram asks
        self.delivery_seconds = delivery_seconds
        self.token = token

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """Send one request; see the module for what is retried and how long."""
        if endpoint in UNTHROTTLED:
            return await callback(*args, **kwargs)
        budget = min(self.delivery_seconds, QUICK_ENDPOINTS.get(endpoint, self.delivery_seconds))
        started = time.monotonic()
        for attempt in range(1, sys.maxsize):
            try:
                result = await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except BadRequest:
                raise
            except (NetworkError, InvalidToken) as exc:  # also TimedOut, 5xx, a dropped connection, 401
                hopeless = isinstance(exc, InvalidToken) and self.token.refused()
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
                elapsed = time.monotonic() - started
                where = f"{endpoint} to chat {data['chat_id']}" if "chat_id" in data else endpoint
                if hopeless or elapsed + delay > budget:
                    log.error("gave up on %s after %d tries in %.0f s: %s", where, attempt, elapsed, exc)
                    raise
                if attempt == 1:
                    log.warning("%s failed (%s); retrying for up to %.0f s", where, exc, budget)
                await asyncio.sleep(delay)
            else:
                self.token.accepted()
                return result
        raise AssertionError("unreachable")


class PollingRequest(HTTPXRequest):
    """The HTTP client of getUpdates (python-telegram-bot sends nothing else through it, and no rate limiter
    sees it): a 401 becomes a network error, so the polling loop backs off and retries instead of stopping
    for good, and updates that cannot be parsed are replaced (see :func:`readable_updates`)."""

    def __init__(self, token: TokenWatch) -> None:
        super().__init__(connection_pool_size=1)
        self.token = token

    # PTB marks post() @final; overriding it is the one place that sees getUpdates' 401 and its parsed result.
    async def post(self, url: str, request_data: RequestData | None = None, **timeouts: Any) -> Any:  # type: ignore[misc, override]
        """Call getUpdates once; return its result, every update in it readable."""
        if self.token.fatal.is_set():  # the bot is exiting for good: no more asking with a dead token
            await asyncio.sleep(1.0)
            return []
        try:
            result = await super().post(url, request_data, **timeouts)
        except InvalidToken as exc:
            self.token.refused()
            raise NetworkError(f"Unauthorized: Telegram refuses the token ({exc})") from None
        self.token.accepted()
        return readable_updates(result)
