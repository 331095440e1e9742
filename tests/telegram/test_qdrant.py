"""``citebot telegram`` with ``CITEBOT_SEARCH=qdrant`` on Qdrant Edge (the shard in its data directory): it answers
as the local engine does, quoting the same sentence, while holding only what its questions read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from index.answer import answer
from index.search.retrieve import Searcher
from tests.support.fake_telegram import TOKEN, FakeTelegram, parse_html
from tests.support.telegram_harness import BotProcess

pytestmark = pytest.mark.slow  # runs the real citebot telegram process


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-qdrant")
    process = BotProcess(server, workdir, workdir / "data", CITEBOT_SEARCH="qdrant").start()
    yield process
    code = process.terminate()
    assert code == 0, process.stderr
    assert TOKEN not in process.stderr and "Traceback" not in process.stderr
    assert (workdir / "data" / "qdrant-edge").is_dir()  # the shard was written where the settings say


@pytest.mark.parametrize("question", ["What did Erdogan warn of?", "Who denied the claim about the drones?"])
def test_the_bot_on_qdrant_quotes_the_sentence_the_local_engine_quotes(
    bot: BotProcess, server: FakeTelegram, seed_searcher: Searcher, question: str
) -> None:
    user = server.user(30_000 + len(question), "Ann")
    message = server.send_text(server.private_chat(user), user, question)
    (reply,) = server.wait_reply(message)
    bold = re.search(r"<b>(.*?)</b>", reply.html, re.DOTALL)
    assert "<blockquote>" in reply.html and bold, reply.html
    local = answer(seed_searcher, question)
    assert local.found and parse_html(bold.group(1)).strip() in local.passages[0].text
