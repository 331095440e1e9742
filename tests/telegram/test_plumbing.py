"""The Telegram bot's plumbing, without a server: fair per-chat scheduling, retries, keeping the token out of logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import random

import pytest
from telegram import Chat, Message, Update
from telegram.error import BadRequest, NetworkError, RetryAfter

import bot.telegram.app as tg
import bot.telegram.transport as transport
from bot.settings import Settings
from bot.telegram.scheduler import FairScheduler, UserLimit
from bot.telegram.transport import PatientRateLimiter, TokenWatch
from index.errors import CitebotError

TOKEN = "987654:SECRET-token-value"


def _update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE)
    return Update(update_id, message=Message(update_id, dt.datetime.now(dt.timezone.utc), chat))


def _scheduler(workers: int = 8, queue: int = 100, burst: int = 1000) -> FairScheduler:
    return FairScheduler(workers, queue, UserLimit(burst, 6000))


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
        processor = _scheduler()
        await processor.initialize()
        update_id = 0
        for number in range(6):
            for chat_id in (1, 2, 3, 4):
                update_id += 1
                await processor.process_update(_update(update_id, chat_id), handle(chat_id, number))
        for _ in range(500):  # the worker drops a chat's empty queue just after its last handler returns
            if len(log) == 24 and not processor._queues:
                break
            await asyncio.sleep(0.01)
        assert len(log) == 24
        assert not processor._queues  # nothing is kept for a chat with nothing waiting
        await processor.shutdown()

    asyncio.run(main())
    for chat_id in (1, 2, 3, 4):
        assert [n for c, n in log if c == chat_id] == list(range(6))
    assert most > 1  # different chats did overlap


def test_a_chat_with_a_backlog_gets_one_turn_in_n() -> None:
    """With one worker, chat 1's ten queued updates and chats 2 and 3 alternate: round robin, not first come."""
    order: list[int] = []

    async def handle(chat_id: int) -> None:
        order.append(chat_id)
        await asyncio.sleep(0)

    async def main() -> None:
        processor = _scheduler(workers=1)
        for update_id, chat_id in enumerate([1] * 10 + [2, 2, 3], start=1):
            await processor.process_update(_update(update_id, chat_id), handle(chat_id))
        await processor.initialize()
        for _ in range(500):
            if len(order) == 13:
                break
            await asyncio.sleep(0.01)
        await processor.shutdown()

    asyncio.run(main())
    assert order[:6] == [1, 2, 3, 1, 2, 1]


def test_a_full_chat_queue_drops_new_updates_and_a_repeated_update_id_is_handled_once() -> None:
    seen: list[int] = []

    async def handle(number: int) -> None:
        seen.append(number)

    async def main() -> None:
        processor = _scheduler(queue=3)
        for number in range(1, 6):
            await processor.process_update(_update(number, 9), handle(number))
        await processor.process_update(_update(1, 9), handle(99))  # delivered twice
        await processor.initialize()
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
        await processor.shutdown()

    asyncio.run(main())
    assert seen == [1, 2, 3]


def test_the_user_bucket_admits_a_burst_then_the_rate() -> None:
    limit = UserLimit(burst=2, per_minute=60)
    assert limit.take(5) is None and limit.take(5) is None
    refused = limit.take(5)
    assert refused is not None and not refused.noticed
    refused.tokens, refused.at = 0.0, refused.at - 1.1  # a second later one more is allowed
    assert limit.take(5) is None
    assert limit.take(6) is None  # other users have their own bucket


class _Flaky:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def _send(limiter: PatientRateLimiter, callback: _Flaky, endpoint: str = "sendMessage") -> str:
    return asyncio.run(limiter.process_request(callback, (), {}, endpoint, {"chat_id": 1}, None))


def _limiter(budget: float = 60.0) -> PatientRateLimiter:
    return PatientRateLimiter(budget, TokenWatch(60.0))


def test_network_errors_and_server_errors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.0,))
    callback = _Flaky(NetworkError("Internal Server Error (500)"), NetworkError("httpx.RemoteProtocolError"))
    assert _send(_limiter(), callback) == "ok" and callback.calls == 3


def test_retries_go_on_until_the_budget_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.1,))
    callback = _Flaky(*(NetworkError("down") for _ in range(100)))
    with pytest.raises(NetworkError):
        _send(_limiter(budget=0.55), callback)
    assert 5 <= callback.calls <= 7  # one try every 0.1 s for 0.55 s


def test_bad_requests_are_not_retried() -> None:
    callback = _Flaky(BadRequest("Bad Request: message is too long"))
    with pytest.raises(BadRequest):
        _send(_limiter(), callback)
    assert callback.calls == 1


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_flood_control_is_waited_out_as_often_as_telegram_asks() -> None:
    callback = _Flaky(*(RetryAfter(dt.timedelta(0)) for _ in range(12)))
    assert _send(_limiter(), callback) == "ok"
    assert callback.calls == 13


def test_an_update_that_cannot_be_parsed_is_replaced_by_its_id() -> None:
    good = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}}
    bad = {"update_id": 8, "message": {**good["message"], "poll": {"id": "p1"}}}
    assert transport.readable_updates([good, bad]) == [good, {"update_id": 8}]


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


def test_a_refused_token_expires_on_time_even_when_no_request_follows() -> None:
    """The polling loop may wait 30 s between tries: the exit must not wait for the next 401."""

    async def main() -> float:
        watch = TokenWatch(0.3)
        started = asyncio.get_running_loop().time()
        assert watch.refused() is False
        await asyncio.wait_for(watch.fatal.wait(), 5)
        assert watch.reason.startswith("Telegram has refused TELEGRAM_BOT_TOKEN (401 Unauthorized) for ")
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(main()) < 2


def test_a_token_accepted_again_stops_the_timer() -> None:
    async def main() -> bool:
        watch = TokenWatch(0.2)
        watch.refused()
        watch.accepted()
        await asyncio.sleep(0.5)
        return watch.fatal.is_set()

    assert asyncio.run(main()) is False
