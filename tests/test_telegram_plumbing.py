"""The Telegram bot's plumbing, without a server: per-chat ordering, retries, keeping the token out of logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import random

import pytest
from telegram import Chat, Message, Update
from telegram.error import BadRequest, NetworkError, RetryAfter

import bot.telegram as tg
from bot.settings import Settings
from index.errors import CitebotError

TOKEN = "987654:SECRET-token-value"


def _update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE)
    return Update(update_id, message=Message(update_id, dt.datetime.now(dt.timezone.utc), chat))


def test_updates_of_one_chat_run_in_order_while_chats_run_concurrently() -> None:
    log: list[tuple[int, int]] = []
    running = 0
    most = 0
    rng = random.Random(7)

    async def handle(chat_id: int, number: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(rng.uniform(0, 0.01))
        log.append((chat_id, number))
        running -= 1

    async def main() -> None:
        processor = tg.ChatOrderedProcessor(64)
        jobs = []
        update_id = 0
        for number in range(6):
            for chat_id in (1, 2, 3, 4):
                update_id += 1
                coroutine = handle(chat_id, number)
                jobs.append(asyncio.create_task(processor.process_update(_update(update_id, chat_id), coroutine)))
        await asyncio.wait_for(asyncio.gather(*jobs), 10)
        assert not processor._locks  # no lock is kept for a chat with nothing waiting

    asyncio.run(main())
    for chat_id in (1, 2, 3, 4):
        assert [n for c, n in log if c == chat_id] == list(range(6))
    assert most > 1  # different chats did overlap


class _Flaky:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def _send(limiter: tg.RetryingRateLimiter, callback: _Flaky, endpoint: str = "sendMessage") -> str:
    return asyncio.run(limiter.process_request(callback, (), {}, endpoint, {"chat_id": 1}, None))


def test_network_errors_and_server_errors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tg, "NETWORK_RETRY_DELAYS", (0.0, 0.0, 0.0))
    callback = _Flaky(NetworkError("Internal Server Error (500)"), NetworkError("httpx.RemoteProtocolError"))
    assert _send(tg.RetryingRateLimiter(), callback) == "ok" and callback.calls == 3


def test_retries_give_up_after_the_last_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tg, "NETWORK_RETRY_DELAYS", (0.0, 0.0))
    callback = _Flaky(*(NetworkError("down") for _ in range(5)))
    with pytest.raises(NetworkError):
        _send(tg.RetryingRateLimiter(), callback)
    assert callback.calls == 3


def test_bad_requests_are_not_retried() -> None:
    callback = _Flaky(BadRequest("Bad Request: message is too long"))
    with pytest.raises(BadRequest):
        _send(tg.RetryingRateLimiter(), callback)
    assert callback.calls == 1


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_flood_control_is_waited_out() -> None:
    callback = _Flaky(RetryAfter(dt.timedelta(0)))
    assert _send(tg.RetryingRateLimiter(max_retries=2), callback) == "ok"
    assert callback.calls == 2


def test_the_token_never_reaches_a_log_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(tg.RedactToken(TOKEN))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("HTTP Request: POST %s", f"https://api.telegram.org/bot{TOKEN}/getMe")
        try:
            raise RuntimeError(f"failed at /bot{TOKEN}/sendMessage")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output
    assert output.count("<TELEGRAM_BOT_TOKEN>") == 2  # in the message and in the traceback


def test_a_missing_token_is_one_clear_error() -> None:
    with pytest.raises(CitebotError, match=r"^TELEGRAM_BOT_TOKEN is not set.*@BotFather"):
        tg.run_bot(Settings.from_env({}, env_file=None))
