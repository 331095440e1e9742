"""Running the bot: start-up, waiting for SIGTERM / Ctrl-C (or a token Telegram keeps refusing), bounded shutdown.

This replaces python-telegram-bot's ``run_polling`` / ``run_webhook`` (which
wait for every pending update without a limit) with the same steps, each
bounded: stop taking updates, let the answers in progress finish for up to
``TELEGRAM_SHUTDOWN_SECONDS``, drop what is queued with a log line, close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable

from telegram.ext import Application

from bot.telegram.scheduler import FairScheduler
from bot.telegram.transport import TokenWatch
from bot.telegram.webhook import Webhook
from index.errors import CitebotError

log = logging.getLogger("citebot.telegram")

#: The least time each closing step gets, even when the shutdown budget is spent.
MIN_STEP = 1.0


class QuietConfirm(logging.Filter):
    """Turn python-telegram-bot's traceback when the last getUpdates (confirming the updates handled) fails
    at shutdown into one line: with the network down that is expected, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite that one record; keep every record."""
        if record.getMessage().startswith("Error while calling `get_updates` one more time") and record.exc_info:
            error = record.exc_info[1]
            record.msg = "shutting down: could not confirm the last updates to Telegram (%s); they may come again"
            record.args = (f"{type(error).__name__}: {error}",)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.WARNING, "WARNING"
        return True


async def serve(
    application: Application,
    start: Callable[[], Awaitable[None]],
    scheduler: FairScheduler,
    token: TokenWatch,
    shutdown_seconds: float,
    webhook: Webhook | None = None,
    on_stop: Callable[[], None] = lambda: None,
) -> None:
    """Initialise ``application``, run ``start`` (start-up, then polling or the webhook), serve until a
    stop signal, then stop within about ``shutdown_seconds`` (``webhook`` too, when the bot has one); ``on_stop``
    is called first, to tell work in other threads (adding an article) to stop at its next safe point.

    Raises:
        CitebotError: when Telegram refused the token for too long (the process should exit non-zero).
    """
    logging.getLogger("telegram.ext.Updater").addFilter(QuietConfirm())
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await application.initialize()
        waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(token.fatal.wait())]
        starting = asyncio.ensure_future(start())
        try:
            done, _ = await asyncio.wait([starting, *waits], return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (starting, *waits):
                future.cancel()
            await asyncio.gather(starting, *waits, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        on_stop()
        await stop(application, scheduler, shutdown_seconds, webhook)
    if token.fatal.is_set():
        raise CitebotError(token.reason)


async def stop(
    application: Application, scheduler: FairScheduler, seconds: float, webhook: Webhook | None = None
) -> None:
    """Stop taking updates, finish or drop the work (see :meth:`FairScheduler.close`), close: in about ``seconds``."""
    deadline = time.monotonic() + seconds
    updater = application.updater
    if updater is not None and updater.running:
        await _bounded(updater.stop(), deadline, "stopping polling")
    if webhook is not None:
        await _bounded(webhook.stop(), deadline, "stopping the webhook")
    await scheduler.close(deadline)
    if application.running:
        await _bounded(application.stop(), deadline, "stopping the application")
    await _bounded(application.shutdown(), deadline, "closing the connections")
    if application.post_shutdown:
        await _bounded(application.post_shutdown(application), deadline, "freeing the thread pool")


async def _bounded(step: Awaitable[object], deadline: float, what: str) -> None:
    """Await ``step`` until ``deadline`` (at least :data:`MIN_STEP` seconds); log and move on if it fails."""
    timeout = max(MIN_STEP, deadline - time.monotonic())
    try:
        await asyncio.wait_for(step, timeout)
    except asyncio.TimeoutError:
        log.warning("shutting down: %s took over %.0f s; skipped", what, timeout)
    except Exception as exc:
        log.warning("shutting down: %s failed: %s", what, exc)
