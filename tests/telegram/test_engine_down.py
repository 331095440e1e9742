"""``citebot telegram`` with ``CITEBOT_SEARCH=qdrant`` and its Qdrant server down: each asker is told plainly that
search is unavailable, with no traceback in the log and no token in it, and the bot keeps running."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bot.telegram.app import SEARCH_UNAVAILABLE
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.telegram_harness import BotProcess

pytestmark = pytest.mark.slow  # runs the real citebot telegram process


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once it is closed
    workdir = tmp_path_factory.mktemp("telegram-engine-down")
    env = {"CITEBOT_SEARCH": "qdrant", "CITEBOT_QDRANT_URL": f"http://127.0.0.1:{closed}"}
    process = BotProcess(server, workdir, workdir / "data", **env).start()
    yield process
    code = process.terminate()
    assert code == 0, process.stderr
    assert TOKEN not in process.stderr


def test_every_asker_is_told_search_is_unavailable_and_the_bot_stays_up(bot: BotProcess, server: FakeTelegram) -> None:
    for number in range(2):
        user = server.user(20_000 + number, "Ann")
        message = server.send_text(server.private_chat(user), user, "What did Erdogan warn of?")
        (reply,) = server.wait_reply(message)
        assert SEARCH_UNAVAILABLE in reply.text
    assert "is not reachable" in bot.stderr and "Traceback" not in bot.stderr
